# Show a figure file inline on the page (a data URI: the page needs no separate image file).
import base64
from pathlib import Path


def show(path, alt: str) -> None:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    print(f'<img alt="{alt}" src="data:image/png;base64,{data}" style="max-width:100%">')
