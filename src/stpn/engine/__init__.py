"""Training engine shared by every task."""
