"""paude's policy pack: rules every session's stack must pass, run by the Pulumi engine on
every plan and apply (see docs/policies.md)."""
