"""Stand-ins for host agents: the fleet simulator and its transports."""
