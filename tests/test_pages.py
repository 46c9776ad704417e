"""Run pages and the collection page: human formatting, sorting, filtering, zoom, dark mode, links back,
readable thumbnails and flags; the script checked in headless Chromium where one is installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from probe.gallery import Gallery, write_collection_index
from probe.gallery.html import human, render_run_page
from probe.gallery.numbers import MINUS, number, quantity, ratio, seconds
from probe.gallery.outdir import write_marker

from pagecheck import broken_links, reprs

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)


def browser_dom(page: Path, script: str) -> str:
    """The DOM of ``page`` after ``script`` ran in it (headless Chromium, from file://)."""
    copy = page.with_name("scripted-" + page.name)
    copy.write_text(page.read_text().replace("</body>", f"<script>{script}</script></body>"))
    run = subprocess.run([BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=2000",
                          "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=90)
    return run.stdout


class Figures(HTMLParser):
    """The figures of the grid ``grid_id`` in DOM order: their data attributes and whether hidden."""

    def __init__(self, grid_id: str) -> None:
        super().__init__()
        self.grid_id, self.inside, self.depth, self.figures = grid_id, False, 0, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "div" and (self.inside or values.get("id") == self.grid_id):
            self.inside, self.depth = True, self.depth + 1
        elif self.inside and tag == "figure":
            self.figures.append(values)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.inside:
            self.depth -= 1
            self.inside = self.depth > 0


def figures(dom: str, grid_id: str) -> list[dict]:
    parser = Figures(grid_id)
    parser.feed(dom)
    return parser.figures


def scored_gallery(folder: Path, scores=(3.0, -1.0, 7.5, 0.25, 2.0), **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gallery = Gallery(folder, command="maximize", title="digits conv2",
                      fields={"model": "digits", "weights": "shipped", "lr": 0.05000000000000001, "size": None,
                              "layers": ["conv1", "conv2"], "options": {"l1": 0.3, "tv": None}, **fields},
                      version="0")
    for unit, score in enumerate(scores):
        gallery.add(Image.new("L", (28, 28), unit * 40), f"conv2-{unit:03d}.png",
                    f"conv2:{unit} {'odd' if unit % 2 else 'even'}", unit=unit, score=score)
    gallery.write()
    mark(folder)
    return folder / "index.html"


def mark(folder: Path) -> None:
    """List the folder's files in its marker, as OutDir.write does: probe gallery touches only marked pages."""
    write_marker(folder, [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()], "gallery")


def test_human_formatting():
    assert human(None) == "\u2014" and human(True) == "yes" and human(0.05000000000000001) == "0.05"
    assert human(123456.789) == "123,457" and human(["conv1", "conv2"]) == "conv1, conv2"
    assert human([[16, 16], [24, 24]]) == "(16, 16), (24, 24)" and human({"l1": 0.3, "tv": None}) == "l1: 0.3; tv: \u2014"
    assert human([]) == "\u2014" and human(7) == "7" and human(-3.872) == "\u22123.872"  # a true minus on pages


@pytest.mark.parametrize("value, text", [
    (1234567, "1,234,567"), (-1234.5678, "-1,235"), (0.05000000000000001, "0.05"), (164.53, "164.5"),
    (-0.5516513520730477, "-0.5517"), (2.0, "2"), (-0.0, "0"), (9.99999, "10"), (0.00012345, "0.0001234"),
    (1.2e-7, "1.2e-7"), (3e18, "3e+18"), (float("nan"), "\u2014"), (float("-inf"), "-inf"), (None, "\u2014"),
])
def test_numbers_for_people(value, text):
    assert number(value) == text


def test_number_signs_digits_and_units():
    assert number(0.3, sign=True) == "+0.3" and number(-0.3, sign=True, minus=MINUS) == "\u22120.3"
    assert number(2.4751, digits=3) == "2.48" and ratio(-3.872) == "-3.87\u00d7" and ratio(None) == "\u2014"
    assert seconds(1.879) == "1.9 s" and seconds(16.3) == "16 s" and seconds(125.3) == "2 min 05 s"
    assert seconds(3725) == "1 h 02 min"
    assert quantity([64, 64], "image_size") == "64\u00d764" and quantity([64, 64], "layers") == "64, 64"
    assert quantity([[23, 23], [33, 33]], "octave_sizes") == "23\u00d723, 33\u00d733"
    assert quantity(0.997, "test_accuracy") == "99.7%" and quantity(6.624, "style_loss_percent") == "6.62%"
    assert quantity(1618.4, "peak_mib") == "1,618 MiB" and quantity([-0.403, 0.5076], "weight_range") == "-0.403 to 0.5076"
    assert quantity({"input_size": [28, 28], "mean": [0.1563]}, "preprocess") == "input_size: 28\u00d728; mean: 0.1563"


def test_run_page_shows_units_dates_and_plain_answers(tmp_path):
    page = scored_gallery(tmp_path / "run", seconds=16.31, image_size=[28, 28], diverged=None,
                          objective_before=-1234.56789).read_text()
    table = page[page.index('<table class="meta">'):page.index("</table>")]
    assert "<td>seconds</td><td>16 s</td>" in table and "<td>image size</td><td>28\u00d728</td>" in table
    assert "<td>diverged</td><td>no</td>" in table and "<td>objective before</td><td>\u22121,235</td>" in table
    assert re.search(r"<td>created</td><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</td>", table)
    assert reprs(page) == []


def test_run_page_has_no_python_reprs_and_has_controls_zoom_and_dark_mode(tmp_path):
    page = scored_gallery(tmp_path / "run").read_text()
    table = page[page.index('<table class="meta">'):page.index("</table>")]
    for leak in ("None", "['", "{'", "0.05000000000000001", "True"):
        assert leak not in table, leak
    assert "conv1, conv2" in table and "l1: 0.3; tv: \u2014" in table
    assert "prefers-color-scheme:dark" in page and 'id="lightbox"' in page and "image-rendering:pixelated" in page
    assert 'class="zoom" href="conv2-002.png"' in page and 'data-score="7.5"' in page
    assert '<option value="score:-1:n">' in page and "<nav>" not in page  # no index above: no link back


def test_captions_and_fields_are_escaped(tmp_path):
    page = render_run_page('<b>"t"</b>', {"<k>": "<script>x</script>"},
                           [("<h>", [{"file": 'a"b.png', "caption": "<img onerror=x>", "score": 1.0}])])
    assert "<script>x" not in page and "<img onerror" not in page and "&lt;img onerror=x&gt;" in page
    assert 'href="a%22b.png"' in page and "&lt;b&gt;&quot;t&quot;&lt;/b&gt;" in page


def test_collection_page_dates_thumbnails_cards_and_links_back(tmp_path):
    root = tmp_path / "runs"
    scored_gallery(root / "fc2", objective="class", preset="robust")
    scored_gallery(root / "fc2-2", objective="class", preset="plain", weights="random")
    train = root / "train-xo"
    train.mkdir()
    gallery = Gallery(train, command="train", title="train", fields={"model": "xo", "weights": "xo.pt"}, version="0")
    gallery.add_extra("loss.png", "loss", image=Image.new("RGB", (300, 200), "white"))
    gallery.write(test_accuracy=0.99)
    mark(train)
    manifests = {name: json.loads((root / name / "manifest.json").read_text()) for name in ("fc2", "fc2-2", "train-xo")}
    (root / "fc2" / "manifest.json").write_text(json.dumps({**manifests["fc2"], "created": "2020-01-01T00:00:00+00:00"}))
    old = {k: v for k, v in manifests["fc2-2"].items() if k != "created"}  # a run from before `created`
    (root / "fc2-2" / "manifest.json").write_text(json.dumps(old))
    os.utime(root / "fc2-2" / "manifest.json", (1.6e9, 1.6e9))  # 2020-09-13
    index, count = write_collection_index(root)
    page = index.read_text()
    assert count == 3
    cards = figures(page, "runs")
    assert [card["data-name"] for card in cards] == ["train-xo", "fc2-2", "fc2"]  # newest first
    assert cards[1]["data-created"].startswith("2020-09-13") and "2020-01-01 00:00" in page
    assert 'src="train-xo/loss.png"' in page and 'src="fc2/conv2-000.png"' in page
    assert "contact-sheet.png" not in page  # thumbnails are the images themselves, not a shrunk sheet
    assert page.count('class="badge">random weights<') == 1 and "preset: plain" in page and "L1: 0.3" in page
    assert 'class="small"' in page  # 28 px digits are drawn with crisp pixels
    for name in ("fc2", "train-xo"):  # pages written before the index now link back to it
        assert '<nav><a href="../index.html">' in (root / name / "index.html").read_text()
    later = scored_gallery(root / "later")
    assert '<nav><a href="../index.html">' in later.read_text()  # and new runs link at once
    assert broken_links(root) == [] and reprs(page) == [] and "test accuracy: 99%" in page


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_run_page_sorts_filters_and_zooms_in_chromium(tmp_path):
    page = scored_gallery(tmp_path / "run")
    script = """
      var select = document.querySelector('.controls select');
      select.value = 'score:-1:n'; select.dispatchEvent(new Event('change', {bubbles: true}));
      document.querySelector('a.zoom[href="conv2-002.png"]').click();
      document.body.setAttribute('data-box', document.getElementById('lightbox').hidden ? 'hidden' : 'shown');
      document.body.setAttribute('data-big', document.querySelector('#lightbox img').getAttribute('src'));
      var box = document.querySelector('.controls input');
      box.value = 'odd'; box.dispatchEvent(new Event('input', {bubbles: true}));
    """
    dom = browser_dom(page, script)
    shown = figures(dom, "grid-0")
    assert [float(f["data-score"]) for f in shown] == [7.5, 3.0, 2.0, 0.25, -1.0]
    assert [f["data-order"] for f in shown if "hidden" not in f] == ["3", "1"]  # the odd units, by score
    assert 'data-box="shown"' in dom and 'data-big="conv2-002.png"' in dom
    assert re.search(r'class="count">2 of 5<', dom)


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_collection_page_sorts_by_name_and_command_in_chromium(tmp_path):
    root = tmp_path / "runs"
    for name in ("b-run", "a-run", "c-run"):
        scored_gallery(root / name)
    index, _ = write_collection_index(root)
    dom = browser_dom(index, """
      var select = document.querySelector('.controls select');
      select.value = 'name:1:s'; select.dispatchEvent(new Event('change', {bubbles: true}));
    """)
    assert [card["data-name"] for card in figures(dom, "runs")] == ["a-run", "b-run", "c-run"]


def test_collection_page_leaves_unmarked_run_pages_alone(tmp_path):
    root = tmp_path / "runs"
    page = scored_gallery(root / "fc2")
    (root / "fc2" / ".cnn-probe").unlink()  # a page cnn-probe cannot prove it wrote
    before = page.read_bytes()
    write_collection_index(root)
    assert page.read_bytes() == before


def test_style_captions_keep_a_small_percentage():
    from probe.reports.style import _percent

    assert _percent(0.00133) == "0.133%" and _percent(0.17146) == "17.1%"  # ".1f" wrote the first as 0.1%


def test_a_pages_table_leaves_out_the_options_not_used():
    """A dream's page listed tile, tile margin, guide, guide size, zoom and channels as '—' rows."""
    from probe.gallery.html import _meta_rows

    table = _meta_rows({"steps": 1, "tile": None, "guide": None, "diverged": None})
    assert "<td>steps</td>" in table and "<td>diverged</td><td>no</td>" in table
    assert "tile" not in table and "guide" not in table


def images(page: str) -> list[dict]:
    """The attributes of every <img> of ``page``."""
    class Images(HTMLParser):
        found: list[dict] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                self.found.append(dict(attrs))

    parser = Images()
    parser.found = []
    parser.feed(page)
    return parser.found


def test_every_image_of_run_and_collection_pages_says_what_it_shows(tmp_path):
    """The collection's thumbnails had alt="" (their link read as nothing to a screen reader), and an image
    without a caption had none either."""
    root = tmp_path / "runs"
    scored_gallery(root / "fc2")
    (root / "bare").mkdir()
    gallery = Gallery(root / "bare", command="filters", title="t", version="0")
    gallery.add(Image.new("L", (8, 8)), "kernel.png", "")
    gallery.add_extra("plot.png", "", image=Image.new("RGB", (30, 20)))
    gallery.write()
    mark(root / "bare")
    index, _ = write_collection_index(root)
    for page in (index, root / "fc2" / "index.html", root / "bare" / "index.html"):
        shown = [attrs for attrs in images(page.read_text()) if attrs.get("src")]  # not the empty lightbox
        assert shown and all(attrs.get("alt") for attrs in shown), (page, shown)
    assert 'alt="maximize fc2: image 1 of ' in index.read_text()
    assert 'alt="kernel.png"' in (root / "bare" / "index.html").read_text()


def test_a_pages_table_leaves_out_empty_lists():
    """An attribution page read 'skipped: —' when no method was skipped."""
    from probe.gallery.html import _meta_rows

    table = _meta_rows({"skipped": [], "options": {}, "methods": ["saliency"]})
    assert "skipped" not in table and "options" not in table and "<td>saliency</td>" in table


NARROW = """
  var words = 0, broken = [];
  document.querySelectorAll('table.meta td:first-child').forEach(function (cell) {
    cell.textContent.split(' ').forEach(function (word) {
      var probe = document.createElement('span');  // measured outside the table, which it would widen
      probe.style.cssText = 'position:absolute;white-space:nowrap;font:' + getComputedStyle(cell).font;
      probe.textContent = word; document.body.appendChild(probe);
      var room = cell.clientWidth - parseFloat(getComputedStyle(cell).paddingRight);
      if (probe.getBoundingClientRect().width > room + 0.5) { broken.push(word); }
      document.body.removeChild(probe); words += 1;
    });
  });
  document.body.setAttribute('data-words', words);
  document.body.setAttribute('data-broken', broken.join(','));
  document.body.setAttribute('data-wide', document.documentElement.scrollWidth > window.innerWidth ? 'yes' : 'no');
"""


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_a_run_page_on_a_phone_breaks_no_label_inside_a_word_and_scrolls_no_sideways(tmp_path):
    """At 480 px the table's labels broke anywhere: 'objectiv/e', 'channel/s last', 'second/s'."""
    page = scored_gallery(tmp_path / "run", objective_before=1.5, channels_last=False, seconds=3.0,
                          cli="probe maximize --layer conv2 --out " + "/very/long/path" * 12,
                          preprocess={"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    copy = page.with_name("scripted-" + page.name)
    copy.write_text(page.read_text().replace("</body>", f"<script>{NARROW}</script></body>"))
    run = subprocess.run([BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--window-size=480,900",
                          "--virtual-time-budget=2000", "--dump-dom", copy.as_uri()],
                         capture_output=True, text=True, timeout=90)
    assert re.search(r'data-words="\d\d', run.stdout), run.stdout[-2000:]
    assert 'data-broken=""' in run.stdout and 'data-wide="no"' in run.stdout
