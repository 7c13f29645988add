"""``iotengine stream``: the replay with a live status line on stderr, alert lines on stdout, and Ctrl-C that
stops after the current batch (checkpointed and summarised)."""

from __future__ import annotations

import json
import sys
import time

from tqdm import tqdm

__all__ = ["StatusLine", "StopOnSignal", "stream_command"]


def stream_command(args) -> int:
    """``iotengine stream``: replay a source through the streaming scorer, with a status line and alerts."""
    from engine.stream.replay import Replay
    from engine.stream.sources import fleet_source, source_from_file

    if args.mqtt is not None:
        return live_command(args)
    if args.data is not None:
        source = source_from_file(args.data)
    else:
        source = fleet_source(
            args.rows, machines=args.machines, seed=args.seed, interval_s=args.interval_s, late_rate=args.late_rate
        )
    options = _options(args, checkpoint_every_s=10.0)
    status = StatusLine(source.rows)
    initial = _initial_states(args)
    replay = Replay(
        args.bundle,
        source,
        backend=args.backend,
        options=options,
        state_path=args.state,
        scores_path=args.scores,
        alerts_path=args.alerts,
        on_alert=None if args.quiet else status.alert,
        on_progress=status.update,
        initial_states=initial,
    )
    if replay.position:
        status.write(f"resuming {source.name} at sample {replay.position:,} from {args.state}")
    status.start(replay.position)
    with StopOnSignal() as stop:
        try:
            summary = replay.run(should_stop=stop.requested)
        finally:
            status.close()
    status.final(summary.position, summary.rows, summary.machines, sum(summary.alerts.values()))
    if summary.interrupted:
        print(f"stopped by a signal at sample {summary.position:,}", file=sys.stderr)
    print(summary.markdown())
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary.to_json(), indent=1) + "\n")
    if args.state is not None and not summary.finished:
        print(f"checkpoint: {args.state} (run the same command again to continue)", file=sys.stderr)
    return 0


def live_command(args) -> int:
    """``iotengine stream --mqtt``: score live telemetry until Ctrl-C (or --limit, --idle-exit)."""
    from engine.stream.live import LiveStream, MqttSettings

    settings = MqttSettings.address(
        args.mqtt,
        topic=args.topic,
        alerts_topic=args.alerts_topic,
        state_topic=args.state_topic,
        client_id=args.client_id,
        idle_exit_s=args.idle_exit,
    )
    options = _options(args, checkpoint_every_s=1.0)
    status = StatusLine(None)
    stream = LiveStream(
        args.bundle,
        settings,
        backend=args.backend,
        options=options,
        state_path=args.state,
        scores_path=args.scores,
        alerts_path=args.alerts,
        initial_states=_initial_states(args),
        on_alert=None if args.quiet else status.alert,
        on_progress=lambda position, messages, machines, alerts: status.update(position, 0, machines, alerts),
        log=status.write_error,
    )
    if stream.position:
        status.write_error(f"[stream] resuming at sample {stream.position:,} from {args.state}")
    status.start(stream.position)
    with StopOnSignal() as stop:
        try:
            summary = stream.run(should_stop=stop.requested)
        finally:
            status.close()
    print(summary.markdown())
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary.to_json(), indent=1) + "\n")
    return 0


def _options(args, *, checkpoint_every_s: float):
    """The alert and checkpoint settings of both kinds of stream; ``checkpoint_every_s`` unless given (pacing
    is a replay's: live telemetry comes at its own pace)."""
    from engine.stream.replay import ReplayOptions

    return ReplayOptions(
        speed=args.speed if args.mqtt is None else None,
        raise_after=args.raise_after,
        clear_after=args.clear_after,
        warmup=args.warmup,
        rul_hours=args.rul_hours,
        checkpoint_every_s=checkpoint_every_s if args.checkpoint_every is None else args.checkpoint_every,
        limit=args.limit,
    )


def _initial_states(args) -> bytes | None:
    if args.initial_state is None:
        return None
    from engine.backfill.states import read_states

    return read_states(args.initial_state)


class StatusLine:
    """The live status line on stderr (redrawn on a terminal, a line every 5 s in a log) and the alert lines."""

    def __init__(self, rows: int | None):
        self._rows = rows
        self._bar = None
        self._tty = sys.stderr.isatty()
        self._last_line = 0.0
        self._started = time.perf_counter()
        self._start_position = 0

    def start(self, position: int) -> None:
        self._start_position = position
        self._started = time.perf_counter()
        if self._tty:
            self._bar = tqdm(
                total=self._rows, initial=position, unit=" samples", unit_scale=True, file=sys.stderr, leave=False
            )

    def update(self, position: int, rows: int, machines: int, alerts: int) -> None:
        if self._bar is not None:  # the bar shows samples/s itself
            self._bar.n = position
            self._bar.set_postfix_str(f"{machines} machines, {alerts} alerts", refresh=True)
            return
        rate = (position - self._start_position) / max(time.perf_counter() - self._started, 1e-9)
        text = f"{rate:,.0f} samples/s, {machines} machines, {alerts} alerts"
        if time.perf_counter() - self._last_line >= 5.0 or (self._rows is not None and position >= rows):
            self._last_line = time.perf_counter()
            of = "" if self._rows is None else f"/{rows:,}"
            print(f"[stream] {position:,}{of} samples, {text}", file=sys.stderr, flush=True)

    def final(self, position: int, rows: int, machines: int, alerts: int) -> None:
        """The last status, always printed in a log (a terminal had it live)."""
        if not self._tty:
            self._last_line = float("-inf")
            self.update(position, rows, machines, alerts)

    def alert(self, alert) -> None:
        from engine.stream.outputs import format_drivers, iso_time

        self.write(
            f"ALERT {iso_time(alert.timestamp)} machine {alert.machine_id} {alert.task} {alert.score:.4g} "
            f"| {alert.failure_type}, {alert.remaining_life:.1f} h left | drivers: {format_drivers(alert.drivers)}"
        )

    def write(self, line: str) -> None:
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()

    def write_error(self, line: str) -> None:
        tqdm.write(line, file=sys.stderr)
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class StopOnSignal:
    """Ctrl-C (or SIGTERM) asks the replay to stop after its current batch, so it checkpoints and summarises;
    a second Ctrl-C stops at once."""

    def __enter__(self):
        import signal

        self._stop = False
        self._previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True

    def requested(self) -> bool:
        return self._stop

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
