"""``igneous view PATH...``: serve local layers and open them in Neuroglancer."""

from __future__ import annotations

import signal
import threading

import click


@click.command("view")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--browser/--no-browser", default=True, show_default=True,
              help="Open the viewer in this machine's web browser.")
@click.option("--port", default=1337, show_default=True, type=int,
              help="Port of the layer file server on 127.0.0.1; the next free one if taken "
              "(0 = any free port).")
@click.option("--pos", default=None,
              help="Voxel position x,y,z (mip 0 of the first layer) to open at. "
              "Default: the centre of the first layer.")
@click.option("--name", "names", multiple=True,
              help="Layer name in Neuroglancer; once per PATH, in order. Default: directory name.")
@click.option("--ng", default=None,
              help="Use this Neuroglancer page (URL) instead of the client bundled with the "
              "neuroglancer package; the browser must be able to reach it.")
def view(paths: tuple[str, ...], browser: bool, port: int, pos: str | None,
         names: tuple[str, ...], ng: str | None) -> None:
    """Serve local layers over HTTP and show them in Neuroglancer until Ctrl-C.

    Several paths (e.g. an image and its segmentation) are shown together.
    Segmentations show the meshes and skeletons their info names, with the
    largest objects selected. Prints the viewer URL on stdout; failed file
    requests (missing chunks, fragments...) are reported on stderr.
    """
    from igneous.layers import parse_triple
    from igneous.view import view as start_view

    position = parse_triple(pos, "--pos", float)

    def report(request) -> None:
        if request.status >= 400:
            click.echo(f"{request.status} {request.method} {request.path}", err=True)

    handle = start_view(list(paths), port=port, names=names, pos=position, ng=ng,
                        browser=browser, on_request=report)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # "Press Ctrl-C to stop" holds even when started from a shell that
    # ignores SIGINT for background jobs (Python then leaves it ignored)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for layer in handle.layers:
            shown = f", {len(layer.segments)} objects selected" if layer.segments else ""
            click.echo(f"Serving {layer.name} ({layer.kind}{shown}) at "
                       f"{handle.files.url}/{layer.mount}", err=True)
        click.echo(handle.url)
        click.echo("Press Ctrl-C to stop.", err=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        handle.stop()
    click.echo("Stopped.", err=True)
