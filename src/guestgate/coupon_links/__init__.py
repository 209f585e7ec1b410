"""Signed public coupon links: a schedule's (Altostrat's #21) and a batch's, as JSON, CSV, PDF or a page."""
