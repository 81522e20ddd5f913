"""Adapters, installed as ``actorflow.adapters``: one subpackage per technology.

Each is imported on its own (``from actorflow.adapters.memory import ...``); those that
need a server client say which extra to install when it is missing.
"""
