"""New harness mechanisms waiting for their room in the backend layout (temporary)."""
