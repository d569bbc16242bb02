"""Wiring the web side into `fume-edge run`: checked before anything starts, served once the pipeline exists.

`WebRun(...)` checks the listen address and the token (configured, else generated and kept in `state_dir`), one
clear error each, and makes the `LiveFeeds`, one per station, whose `on_result` goes into that station's result hook;
`serve(...)` then binds the port, registers the metrics and starts the server thread on the run's ExitStack, so
it stops with the run.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from fume_edge.alerts.service import AlertService
from fume_edge.alerts.store import AlertStore
from fume_edge.pipeline.config import HttpConfig
from fume_edge.pipeline.loop import Pipeline
from fume_edge.web.access import AccessPolicy, load_token, parse_listen
from fume_edge.web.feed import LiveFeeds
from fume_edge.web.guards import known_names
from fume_edge.web.metrics import PipelineCollector, StageHistograms
from fume_edge.web.rates import StationRates
from fume_edge.web.server import WebServer, build_app
from fume_edge.web.status import WebSources

if TYPE_CHECKING:
    from fume_edge.bundle.remote import RemoteInstaller


def page_width(frame_width: int | None, model_width: int) -> int:
    """The camera images' width: `http.frame_width`, at most the model input's. The images show what the model
    saw, so a wider one would show nothing more and only cost encoding time (16000 px: 15 s per image)."""
    return min(frame_width or model_width, model_width)


def access_note(access: AccessPolicy) -> dict[str, str | bool]:
    """What the page says when it has no token: where this device's token is."""
    if access.token_file is not None:
        where = f"the address fume-edge printed at start (…/#token=…), or the token in {access.token_file}"
    elif access.generated:
        where = "the address fume-edge printed at start (…/#token=…)"
    else:
        where = "the access token this device was configured with"
    return {"open_reads": access.open_reads, "token_from": where}


class WebRun:
    def __init__(
        self,
        config: HttpConfig,
        stations: Sequence[str],
        cameras: tuple[str, ...],
        size: tuple[int, int],
        state_dir: Path,
    ) -> None:
        assert config.listen is not None
        self.config = config
        self.host, self.port = parse_listen(config.listen)
        width = page_width(config.frame_width, size[0])
        self.access = AccessPolicy.for_listen(
            self.host, load_token(config.token_file, config.token_env), config.public_read, state_dir
        )
        self.feeds = LiveFeeds(
            stations,
            cameras,
            (width, round(width * size[1] / size[0])),
            frame_fps=config.frame_fps,
            jpeg_quality=config.jpeg_quality,
        )
        self.registry = CollectorRegistry()

    def serve(
        self,
        pipeline: Pipeline,
        service: AlertService,
        *,
        db: str,
        snapshot_dir: str | None,
        info: Mapping[str, str],
        stack: ExitStack,
        installer: RemoteInstaller | None = None,
    ) -> WebServer:
        """Start serving (until `stack` closes) what `pipeline` and the alert database at `db` hold; model installs
        from the page go to `installer` (none: the page cannot install)."""
        self.feeds.on_each = StageHistograms(self.registry, lambda: pipeline.counters).update
        rates = StationRates()
        self.registry.register(PipelineCollector(lambda: pipeline.snapshot, rates, lambda: self.feeds.encoded, info))
        store = stack.enter_context(AlertStore(db))
        sources = WebSources(
            pipeline,
            self.feeds,
            store,
            None if snapshot_dir is None else Path(snapshot_dir).resolve(),
            info,
            self.config.stale_after_s,
            access_note(self.access),
            installer=installer,
            rates=rates,
        )
        app = build_app(sources, self.access, self.registry, known_names(self.config.hostnames))
        return stack.enter_context(WebServer(app, self.host, self.port))

    def page_url(self, server: WebServer) -> str:
        """The page's address to print (with the token when it was generated)."""
        return self.access.page_url(server.url)
