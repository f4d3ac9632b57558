"""Rebuild data/basemap/countries.geojson: the offline country outlines drawn under the maps.

Source: Natural Earth Admin 0 countries (public domain) as redistributed in TopoJSON by the
npm package world-atlas (ISC). The whole world comes from the 1:110m file; countries that
touch Europe (where the bundled trial recruits) come from the 1:50m file instead. Shared
borders are simplified once per TopoJSON arc (Douglas-Peucker), so neighbours still meet;
coordinates are rounded, and islands smaller than a threshold are dropped.

    python scripts/build_basemap.py                       # npm pack world-atlas@VERSION
    python scripts/build_basemap.py --package-dir DIR     # an already unpacked package/

Only the standard library is used (npm is needed only without --package-dir).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

WORLD_ATLAS_VERSION = "2.0.2"
ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "data" / "basemap" / "countries.geojson"

# Countries whose 1:110m outline is replaced by the 1:50m one: those whose representative
# point falls in this box (lon_min, lat_min, lon_max, lat_max).
DETAIL_BOX = (-25.0, 34.0, 45.0, 72.0)

# No patient is placed there, and it is the largest shape of all.
SKIPPED = frozenset({"Antarctica"})

Point = tuple[float, float]
Ring = list[Point]


def fetch_package(workdir: Path) -> Path:
    """`npm pack` world-atlas into workdir and unpack it; returns the package/ folder."""
    subprocess.run(
        ["npm", "pack", f"world-atlas@{WORLD_ATLAS_VERSION}", "--silent"],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tarball = workdir / f"world-atlas-{WORLD_ATLAS_VERSION}.tgz"
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package"


def decode_arcs(topology: dict[str, Any]) -> list[Ring]:
    """Absolute (lon, lat) points of every arc of a quantised TopoJSON topology."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    if dx == 0 and dy == 0:
        return math.hypot(px - ax, py - ay)
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def simplify(points: Ring, tolerance: float) -> Ring:
    """Douglas-Peucker, iterative, keeping both ends (arcs meet other arcs there)."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        worst, index = 0.0, -1
        for i in range(first + 1, last):
            d = _segment_distance(points[i], points[first], points[last])
            if d > worst:
                worst, index = d, i
        if index >= 0 and worst > tolerance:
            keep[index] = True
            stack.extend(((first, index), (index, last)))
    return [p for p, k in zip(points, keep, strict=True) if k]


def ring_area(ring: Ring) -> float:
    """Planar area in square degrees (enough to tell a speck from an island)."""
    pairs = itertools.pairwise(ring)
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in pairs)) / 2


def build_ring(arc_ids: list[int], arcs: list[Ring], digits: int) -> Ring:
    ring: Ring = []
    for arc_id in arc_ids:
        points = arcs[arc_id] if arc_id >= 0 else arcs[~arc_id][::-1]
        ring.extend(points if not ring else points[1:])
    out: Ring = []
    for x, y in ring:
        p = (round(x, digits), round(y, digits))
        if not out or out[-1] != p:
            out.append(p)
    return out


def polygons(geometry: dict[str, Any]) -> list[list[list[int]]]:
    if geometry.get("type") == "Polygon":
        return [geometry["arcs"]]
    if geometry.get("type") == "MultiPolygon":
        return geometry["arcs"]
    return []


def features(
    topology: dict[str, Any], *, tolerance: float, digits: int, min_area: float
) -> dict[str, dict[str, Any]]:
    """GeoJSON features by country name, from a world-atlas topology."""
    arcs = [simplify(a, tolerance) for a in decode_arcs(topology)]
    out: dict[str, dict[str, Any]] = {}
    for geometry in topology["objects"]["countries"]["geometries"]:
        name = (geometry.get("properties") or {}).get("name") or ""
        shapes = []
        for polygon in polygons(geometry):
            rings = [build_ring(r, arcs, digits) for r in polygon]
            rings = [r for r in rings if len(r) >= 4]
            if not rings or ring_area(rings[0]) < min_area:
                continue
            shapes.append([[list(p) for p in r] for r in rings])
        if not shapes:
            continue
        out[name] = {
            "type": "Feature",
            "properties": {"name": name},
            "geometry": {"type": "MultiPolygon", "coordinates": shapes},
        }
    return out


def in_detail_box(feature: dict[str, Any]) -> bool:
    lon_min, lat_min, lon_max, lat_max = DETAIL_BOX
    # The largest polygon's first point stands for the country (France's mainland, not Guiana).
    largest = max(feature["geometry"]["coordinates"], key=lambda s: ring_area(s[0]))
    lon, lat = largest[0][0]
    return lon_min <= lon <= lon_max and lat_min <= lat <= lat_max


def build(package: Path) -> dict[str, Any]:
    world = json.loads((package / "countries-110m.json").read_text(encoding="utf-8"))
    detail = json.loads((package / "countries-50m.json").read_text(encoding="utf-8"))
    coarse = features(world, tolerance=0.08, digits=1, min_area=0.3)
    fine = features(detail, tolerance=0.025, digits=2, min_area=0.05)
    merged = {k: v for k, v in coarse.items() if k not in SKIPPED}
    for name, feature in fine.items():
        if in_detail_box(feature):
            merged[name] = feature
    return {
        "type": "FeatureCollection",
        "properties": {
            "source": "Natural Earth Admin 0 countries (public domain), v4.1.0, via the npm "
            f"package world-atlas {WORLD_ATLAS_VERSION}; 1:50m in Europe, 1:110m elsewhere",
        },
        "features": [merged[k] for k in sorted(merged)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, help="an unpacked world-atlas package/")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package_dir or fetch_package(Path(tmp))
        collection = build(package)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(collection, separators=(",", ":"), ensure_ascii=False)
    args.output.write_text(text + "\n", encoding="utf-8")
    print(f"{args.output}: {len(collection['features'])} countries, {len(text) // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
