"""The warm peer host (issue 14): fork a node's peers from one imported interpreter per run."""
