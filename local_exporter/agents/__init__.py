"""What the real agents are: their metric families, names and protocols, as their sources define
them. The bridge's adapters, the simulator that imitates the agents and the bundle that reads
their metrics all take these facts from here, so they cannot drift apart. Imports only `common`.
"""
