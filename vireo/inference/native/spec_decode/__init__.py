"""Speculative decoding: proposers (prompt lookup, a draft model), the policy that decides who
guesses how deep (`spec_cost`), and exact verification of the guesses."""
