"""Operations: process metrics, request ids and access logs, health checks, operator rate limits."""
