"""coupons domain."""
