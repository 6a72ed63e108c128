"""The agent loop a user can run: a policy (local model, OpenAI-compatible endpoint, recorded answers, or a verifier
cascade of these) drives a registry of Python tools, each call validated before it runs (see ``loop``)."""
