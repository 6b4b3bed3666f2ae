"""Call routing domain: dial rules, caller-id templates and the call legs' common interface."""
