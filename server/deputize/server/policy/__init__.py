"""The delegation policy on the server's side: reading it from the configuration (or the file it
names), translating other tools' policies, and the questions the server asks of it.

The rules themselves — roles, profiles, tiers, conditions and :func:`deputize.keys.policy.decide`
— live in ``deputize.keys.policy``, shared with the verifier.  A low layer: ``settings`` imports
it, so it imports nothing of the server but ``configuration``.
"""
