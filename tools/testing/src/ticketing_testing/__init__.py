"""Test support for every Ticketing member: the pytest plugin (`plugin`), the servers tests and
`make up` start (`servers`), running a service app (`apps`), waiting (`waiting`), events as
other services publish them (`events`), hostile input (`hostile`) and the Mongos (`mongo`).

Dev tooling only: no production package imports it.
"""
