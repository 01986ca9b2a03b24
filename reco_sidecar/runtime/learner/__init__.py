"""Online learning's processes (docs/online.md): one learner process under the supervisor
takes every accepted event, writes it to the journal, solves the user's vector and publishes
it in a table every worker maps read-only; the workers only read."""
