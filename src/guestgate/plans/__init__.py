"""Access plans: what a code buys (devices at once, sign-ins in total, speed, data, when its validity starts)."""
