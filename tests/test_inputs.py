"""inputs.py: one tensor, a tuple or a dict of model inputs; the names ONNX files give them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.inputs import (
    as_example,
    call_model,
    concat,
    feeds,
    input_names,
    output_names,
    positional,
    rows,
    stack,
    structured,
    take,
    zeros_rows,
)


class Masked(nn.Module):
    def forward(self, input_ids, attention_mask=None, scale=2):
        return input_ids * (1 if attention_mask is None else attention_mask) * scale


def test_call_model_passes_a_dict_by_keyword_a_tuple_by_position_a_tensor_as_it_is():
    model = Masked()
    ids, mask = torch.tensor([[3, 4]]), torch.tensor([[1, 0]])
    assert call_model(model, {"attention_mask": mask, "input_ids": ids}).tolist() == [[6, 0]]
    assert call_model(model, (ids, mask)).tolist() == [[6, 0]]
    assert call_model(model, ids).tolist() == [[6, 8]]


def test_batches_keep_their_structure():
    samples = [{"a": torch.tensor([i, i]), "b": torch.tensor(float(i))} for i in range(3)]
    batch = stack(samples)
    assert batch["a"].shape == (3, 2) and batch["b"].tolist() == [0.0, 1.0, 2.0] and rows(batch) == 3
    assert take(batch, slice(1, None))["a"].tolist() == [[1, 1], [2, 2]]
    joined = concat([(torch.zeros(2, 1),), (torch.ones(1, 1),)])
    assert isinstance(joined, tuple) and joined[0].flatten().tolist() == [0.0, 0.0, 1.0]
    zeros = zeros_rows({"ids": torch.tensor([[5, 6, 7]])}, 2)
    assert zeros["ids"].dtype == torch.int64 and zeros["ids"].shape == (2, 3) and not zeros["ids"].any()


def test_a_shape_stands_for_float_zeros_and_a_batch_for_itself():
    assert as_example((1, 5), 2).shape == (2, 1, 5)
    ids = (torch.ones(2, 3, dtype=torch.int64),)
    assert as_example(ids, 2) is ids


def test_one_float_input_is_named_input_integer_or_several_after_forward():
    model = Masked()
    assert input_names(model, torch.zeros(2, 3)) == ["input"]  # every file so far
    assert input_names(model, torch.zeros(2, 3, dtype=torch.int64)) == ["input_ids"]
    assert input_names(model, (torch.zeros(2, 3), torch.zeros(2, 3))) == ["input_ids", "attention_mask"]
    # a dict in forward's order, whatever order the data gives it
    assert input_names(model, {"attention_mask": torch.ones(1), "input_ids": torch.ones(1)}) == [
        "input_ids",
        "attention_mask",
    ]


def test_output_names_and_back():
    one, two = torch.zeros(1), torch.ones(1)
    assert output_names(one) == ["logits"]
    assert output_names((one, two)) == ["output_0", "output_1"]
    assert output_names({"start": one, "end": two}) == ["start", "end"]
    assert structured({"logits": one}) is one
    assert structured({"output_0": one, "output_1": two}) == (one, two)
    assert list(structured({"start": one, "end": two})) == ["start", "end"]


def test_positional_fills_defaults_and_refuses_what_forward_lacks():
    model = Masked()
    ids, mask = torch.ones(1), torch.zeros(1)
    assert positional(model, {"input_ids": ids}) == (ids,)
    args = positional(model, {"scale": 3, "input_ids": ids})
    assert args[0] is ids and args[1] is None and args[2] == 3
    assert positional(model, {"attention_mask": mask, "input_ids": ids}) == (ids, mask)
    with pytest.raises(UserError, match="'labels' is no argument of the model's forward"):
        positional(model, {"input_ids": ids, "labels": mask})
    with pytest.raises(UserError, match="lack 'input_ids'"):
        positional(model, {"attention_mask": mask})


def test_feeds_map_data_to_a_files_inputs_by_name_or_order():
    a, b = torch.zeros(1), torch.ones(1)
    assert feeds(["x"], a) == {"x": a}
    assert feeds(["ids", "mask"], (a, b)) == {"ids": a, "mask": b}
    assert feeds(["mask"], {"mask": b, "other": a}) == {"mask": b}
    with pytest.raises(UserError, match="takes 'ids'"):
        feeds(["ids"], {"mask": b})
    with pytest.raises(UserError, match="takes 2 inputs, the data has 1"):
        feeds(["ids", "mask"], a)
