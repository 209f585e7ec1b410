"""Tests of the coupons domain."""
