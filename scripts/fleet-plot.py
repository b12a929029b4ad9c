#!/usr/bin/env python3
"""Draws docs/fleet-bench.svg from `scripts/fleet.sh --case bench` figures.

Usage: scripts/fleet-plot.py OUT.svg 'LABEL:N=egress/p99,N=egress/p99,...' ...
Each series is a label and, per N, the origin egress (x blob) and p99 completion (x alone).
"""
import sys

COLORS = ["#c0392b", "#2471a3", "#229954", "#7d3c98"]


def parse(arg):
    label, points = arg.rsplit(":", 1)
    out = []
    for p in points.split(","):
        n, vals = p.split("=")
        eg, p99 = vals.split("/")
        out.append((int(n), float(eg), float(p99)))
    return label, out


def panel(x0, title, series, idx, ns, goal):
    w, h, top = 300, 220, 60
    ymax = max(max(pt[idx] for pt in pts) for _, pts in series)
    ymax = max(ymax, goal) * 1.1
    xs = {n: x0 + w * i / (len(ns) - 1) for i, n in enumerate(ns)}
    y = lambda v: top + h - h * v / ymax
    out = [f'<text x="{x0 + w / 2}" y="35" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>',
           f'<rect x="{x0}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#333"/>']
    for n, x in xs.items():
        out.append(f'<text x="{x}" y="{top + h + 18}" text-anchor="middle" font-size="11">{n}</text>')
    for k in range(5):
        v = ymax * k / 4
        out.append(f'<line x1="{x0}" y1="{y(v)}" x2="{x0 + w}" y2="{y(v)}" stroke="#ddd"/>'
                   f'<text x="{x0 - 4}" y="{y(v) + 4}" text-anchor="end" font-size="11">{v:.1f}</text>')
    out.append(f'<line x1="{x0}" y1="{y(goal)}" x2="{x0 + w}" y2="{y(goal)}" stroke="#999" stroke-dasharray="4 3"/>'
               f'<text x="{x0 + w - 2}" y="{y(goal) - 4}" text-anchor="end" font-size="10" fill="#666">goal {goal}</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{top + h + 34}" text-anchor="middle" font-size="11">nodes starting together (N)</text>')
    for i, (label, pts) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        path = " ".join(f"{xs[pt[0]]},{y(pt[idx])}" for pt in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for pt in pts:
            out.append(f'<circle cx="{xs[pt[0]]}" cy="{y(pt[idx])}" r="3" fill="{c}"/>')
    return out


def main():
    out_path, args = sys.argv[1], sys.argv[2:]
    series = [parse(a) for a in args]
    ns = sorted({n for _, pts in series for n, *_ in pts})
    body = ['<svg xmlns="http://www.w3.org/2000/svg" width="760" height="380" font-family="sans-serif">',
            '<rect width="100%" height="100%" fill="white"/>']
    body += panel(50, "Origin egress (x blob), 64 MiB", series, 1, ns, 1.5)
    body += panel(430, "p99 completion (x one node alone)", series, 2, ns, 2)
    for i, (label, _) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        x, y = 50 + (i % 2) * 360, 335 + (i // 2) * 16
        body.append(f'<rect x="{x}" y="{y}" width="12" height="3" fill="{c}"/>'
                    f'<text x="{x + 16}" y="{y + 5}" font-size="11">{label}</text>')
    body.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(body) + "\n")


main()
