"""Reader of SparseML recipes (issue #13). SparseML itself is never imported.

load      -- file → evaluated modifier list (YAML or Markdown front matter)
modifiers -- typed modifiers, one pydantic model per supported SparseML class
schedule  -- parameter patterns, sparsity at an epoch, total epochs
lr_schedule -- the learning rate at a step, as SparseML's manager would set it
convert   -- SparseMLPlan, the typed form the native side consumes
"""
