"""Reading configuration files below the meaning of any key: typed reads whose errors name the
key path (``sections.py``), and what the YAML parser lets through that a configuration must not
(``yaml_keys.py``).

``deputize.server.settings`` decides what each key means.  A leaf: it imports nothing of the
server.
"""
