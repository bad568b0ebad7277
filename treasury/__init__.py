"""treasury: exactly-once Binance withdrawals from a SQL queue."""
