"""One run and what is done with it: `pipeline` wires a run (`stages` up to the trained model,
`ship` its files), `export` re-exports a finished run through the same stages (`restore` rebuilds
its model), `verdict` gives the exit code, `staging` writes run folders atomically, `resume`
finds interrupted runs, `ranks` runs under torchrun."""
