"""Accounts and money: the database (`db`, `tables`, `migrations` as an ordered list), the credits `ledger`, the
`jobs` transaction (idempotency key, reservation, record, capture or refund), `identity` (visitor tokens, signed-in
users, QA sessions, starting grants), `plans` (tiers, prices, quotes), `instances` (which processes are alive, so a
dead one's reservations are refunded) and `history` (a user's generations and reports)."""
