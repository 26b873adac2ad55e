"""One bench settings type for the recipe's bench: section and paiexport bench options."""

from typer.testing import CliRunner

from paiexport.bench.settings import BenchSettings
from paiexport.cli import app
from paiexport.recipe import Recipe


def test_one_bench_settings_type_for_recipe_and_cli(tmp_path):
    assert Recipe.model_fields["bench"].annotation is BenchSettings
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "a.onnx"), "--batch-sizes", "70000"])
    assert result.exit_code == 2
    assert "--batch-sizes: Input should be less than or equal to 65536" in result.output
