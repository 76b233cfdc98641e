"""Isaac Lab task configs for the Unitree G1 (flat and disturbed locomotion)."""
