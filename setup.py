"""The build step that puts the browser page in the package (issue 17).

`pyproject.toml` holds the project's metadata; this file only adds to setuptools'
`build_py`: the page (`static/`) and the pinned socket.io client are copied into the
package as `chat_server/page/` and `chat_server/page/vendor/`, so an installed wheel
serves the page with no Node and no checkout at run time. The client comes from
`node_modules/`, installed by `npm ci` from `package-lock.json` (which checks every file's
integrity hash); when it is missing, the build runs `npm ci` itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "node_modules" / "socket.io-client" / "dist"
CLIENT_FILES = ("socket.io.min.js", "socket.io.min.js.map")


class BuildWithPage(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install serves static/ and node_modules/ from the checkout
        if not (HERE / "static" / "index.html").is_file():
            return  # building from an sdist that already carries chat_server/page
        page = Path(self.build_lib) / "chat_server" / "page"
        shutil.rmtree(page, ignore_errors=True)
        shutil.copytree(HERE / "static", page)
        if not all((CLIENT / name).is_file() for name in CLIENT_FILES):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
        (page / "vendor").mkdir()
        for name in CLIENT_FILES:
            shutil.copy2(CLIENT / name, page / "vendor" / name)


setup(cmdclass={"build_py": BuildWithPage})
