"""Reading configuration files: what the YAML parser lets through and a configuration must not.

``deputize.server.settings`` validates what a file says; this package holds the checks on how
it is written, below the meaning of any key.  A leaf: it imports nothing of the server.
"""
