"""The runtime that joins the roles: the coordinator and its events, checkpoints and watermarks."""
