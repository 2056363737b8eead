"""The runtime that joins the roles: the coordinator, reader handles, transports and checkpoints."""
