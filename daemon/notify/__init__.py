"""Telling people: messages built from outcomes and warnings, channels that speak each
receiver's documented format, and an outbox per channel that never blocks a firing.

Entry point: daemon.notify.notifier.Notifier.
"""
