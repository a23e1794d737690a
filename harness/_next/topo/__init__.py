"""Link impairment that works with or without netem (moves into the Linux backend later)."""
