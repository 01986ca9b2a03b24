"""Counts the Recommender calls a worker has started and is running, for idle shutdown.

A call is in flight from the moment its handler starts until it returns or, for a stream,
until its last message is sent or the stream is cancelled, so a long BatchRecommend keeps
the sidecar busy for its whole length. Health probes and reflection are not activity."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from reco_sidecar.serving.interceptors import ServerInterceptorBase

PREFIX = "/reco.v1.Recommender/"


class InFlight(ServerInterceptorBase):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = 0
        self._running = 0

    def counts(self) -> tuple[int, int]:
        """(calls started so far, calls running now)"""
        with self._lock:
            return self._started, self._running

    def _enter(self) -> None:
        with self._lock:
            self._started += 1
            self._running += 1

    def _exit(self) -> None:
        with self._lock:
            self._running -= 1

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not str(details.method).startswith(PREFIX):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._stream(handler.stream_stream), handler.request_deserializer, handler.response_serializer)

    def _unary(self, behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: Any) -> Any:
            self._enter()
            try:
                return behaviour(request, context)
            finally:
                self._exit()

        return call

    def _stream(self, behaviour: Callable[[Any, Any], Iterator[Any]]) -> Callable[[Any, Any], Iterator[Any]]:
        def call(request: Any, context: Any) -> Iterator[Any]:
            self._enter()
            try:
                yield from behaviour(request, context)
            finally:  # also when the client cancels: the server closes the generator
                self._exit()

        return call
