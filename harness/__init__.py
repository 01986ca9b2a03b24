"""The one process harness shared by tests/, loadtest/ and bench/.

Starting the sidecar and reading its ready line, killing process groups, /proc accounting,
publishing a copy of a model version, finding or installing ghz, and the scaffold every
benchmark and load test runs in (time bound, result JSON with commit and machine load).

Imports point one way: tests/, loadtest/ and bench/ import harness; harness imports
reco_sidecar and never any of those three (tests/test_layers.py checks it). This module
imports nothing, so `python -m harness.gotools` works before grpc or numpy are installed.
"""
