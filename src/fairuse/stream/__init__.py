"""The streaming worker: Faust agents over Kafka that run the ledger (``fairuse worker``).

``core`` is the processing step without Faust, ``state`` the decoded-state cache over a table,
``app`` the Faust application, ``views`` the HTTP API, ``auth`` its tokens, ``policy_feed`` the
policy topic, ``cli`` the commands. See docs/streaming.md.
"""
