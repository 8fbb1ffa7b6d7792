"""The local stack: every process of Ticketing on one machine, behind one gateway."""
