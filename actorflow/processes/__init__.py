"""One module per background process of a workflow."""
