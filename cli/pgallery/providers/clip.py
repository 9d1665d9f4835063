"""The ``clip`` provider: a CLIP model on the CPU, from a local directory or the Hugging
Face cache; a repo id that is not cached yet (by default ``openai/clip-vit-base-patch32``,
ViT-B/32) is downloaded once into the standard cache, with a progress bar.

Optional: needs ``pip install torch==2.13.0`` (CPU build) and ``pip install -e .[clip]``
(transformers). Images and texts land in one space, so it serves image, text and combined
(text + image) search. Vectors are float32, L2-normalised, of the model's true projection
dimension (512 for ViT-B/32); the database zero-pads them to 1024, which is exact for
cosine distance.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from pgallery.errors import ArgError, ConfigError, EmbeddingFailed
from pgallery.intake import decoding, read_image
from pgallery.providers.base import (COLUMN_DIMENSION, EmbeddingProvider, ImageResult,
                                     ImageSource)

INSTALL_HINT = ("install the CLIP extra: `pip install torch==2.13.0` (the CPU build), then "
                "`pip install -e .[clip]`")
DEFAULT_MODEL = "openai/clip-vit-base-patch32"  # ViT-B/32, 512-d: the MyScale tutorial's
DEFAULT_BATCH_SIZE = 16
_SNAPSHOT_DIR = re.compile(r"^[0-9a-f]{40}$")  # .../models--org--name/snapshots/<commit>
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9._:/@+-]")  # embedding_model.name's CHECK allows these


def _check_backend_installed() -> None:
    """The ConfigError of _import_backend without importing anything (torch and
    transformers take seconds to import): so that a model that cannot be had is said at
    once, and an install that lacks them is said before any download."""
    import importlib.util
    import sys

    for name in ("torch", "transformers"):
        missing = (sys.modules[name] is None if name in sys.modules
                   else importlib.util.find_spec(name) is None)
        if missing:
            raise ConfigError(f"the 'clip' provider needs {name}: {INSTALL_HINT}")


def _import_backend():
    """torch and transformers, or a ConfigError that says how to install them."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ConfigError(f"the 'clip' provider needs {exc.name or 'torch and transformers'}: "
                          f"{INSTALL_HINT}") from None
    return torch, transformers


@contextlib.contextmanager
def _quiet(transformers):
    """Silence transformers' progress bars and notices while a model loads."""
    hf_logging = transformers.utils.logging
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _looks_like_path(spec: str) -> bool:
    """A filesystem path, not a Hugging Face repo id such as 'openai/clip-vit-base-patch32'."""
    return (spec.startswith(("/", ".", "~", "\\")) or spec.count("/") > 1
            or bool(re.match(r"^[A-Za-z]:", spec)))


def model_tag(spec: str) -> str:
    """The model name stored with every vector: ``clip/<directory name or repo id>``,
    in the characters the database allows for model names."""
    path = Path(spec).expanduser()
    name = spec.strip("/")
    if path.is_dir():
        name = path.resolve().name
        if _SNAPSHOT_DIR.match(name) and path.resolve().parent.name == "snapshots":
            repo = path.resolve().parent.parent.name  # models--openai--clip-vit-base-patch32
            if repo.startswith("models--"):
                name = repo[len("models--"):].replace("--", "/")
    return "clip/" + _TAG_UNSAFE.sub("-", name)[:190]


def load_image(source: ImageSource, side: int | None = None):
    """A decoded RGB PIL image from a file, a URL or a CheckedImage. Raises the intake's
    typed errors (pgallery.intake), as every provider does.

    ``side``: the model sees the picture resized to this (its shortest edge); a JPEG is
    then decoded at the smallest of Pillow's reduced scales (1/2, 1/4, 1/8) that keeps
    at least twice that, which is several times faster for a photo of several thousand
    pixels and leaves the resize to the model's own preprocessor."""
    checked = read_image(source, decode=False)   # decoded here, once
    with checked.open() as image, decoding(checked.name):
        if side and image.format == "JPEG":
            image.draft("RGB", (2 * side, 2 * side))
        return image.convert("RGB")


def _input_side(processor) -> int | None:
    """The side a CLIP image processor resizes a picture to (its shortest edge)."""
    size = getattr(processor, "size", None)

    def field(name):
        return size.get(name) if isinstance(size, dict) else getattr(size, name, None)

    side = field("shortest_edge") or field("height")
    return int(side) if isinstance(side, (int, float)) and side > 0 else None


def _unit(vector: np.ndarray, what: str) -> np.ndarray:
    """L2-normalise; a vector with no direction (zero, NaN) is a failure of this input."""
    vector = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise EmbeddingFailed(f"the model gave {what} a vector with no direction",
                              code="DegenerateEmbedding")
    return (vector / norm).astype(np.float32)


# What a CLIP checkpoint needs from a Hub repository: config, preprocessor and tokenizer
# files, and one copy of the weights (safetensors, else PyTorch's own format; repositories
# also hold TensorFlow and Flax copies that would double the download).
_FETCH_PATTERNS = ["*.json", "*.txt"]
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def _cached_snapshot(repo_id: str) -> str | None:
    """The cached snapshot directory of ``repo_id`` if its config and weights are there."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(config, str):
        return None
    if not any(isinstance(try_to_load_from_cache(repo_id, w), str) for w in _WEIGHTS):
        return None
    return str(Path(config).parent)


def _fetched(repo_id: str) -> str:
    """A Hugging Face repo id's local snapshot: from the cache, or downloaded into it once
    (with a progress bar). A ConfigError that says what to do when neither can be had."""
    from huggingface_hub import constants

    cached = _cached_snapshot(repo_id)
    if cached:
        return cached
    where = constants.HF_HUB_CACHE
    if constants.HF_HUB_OFFLINE:
        raise ConfigError(
            f"the CLIP model {repo_id} is not in the Hugging Face cache ({where}) and "
            "HF_HUB_OFFLINE is set: unset it to download the model once, or set "
            "PGALLERY_CLIP_MODEL to a saved model directory (docs/clip.md)")
    return _download(repo_id, where)


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a failed download raises: the Hub client's errors, and those of the HTTP
    library it uses (httpx2 or httpx for huggingface_hub 1.x and later, requests before)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [HfHubHTTPError, OSError, ValueError]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"),
                         ("requests", "RequestException")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _download(repo_id: str, where: str) -> str:
    import sys

    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        # one request, not retried: offline, the answer should come at once
        files = {f.rfilename for f in HfApi().model_info(repo_id).siblings or []}
        weights = next((w for w in _WEIGHTS if w in files), None)
        if weights is None:
            raise ConfigError(f"{repo_id} on the Hugging Face Hub holds no PyTorch weights "
                              f"({' or '.join(_WEIGHTS)}); is it a CLIP model?")
        print(f"downloading the CLIP model {repo_id} once into {where} ...", file=sys.stderr)
        return snapshot_download(repo_id, allow_patterns=[*_FETCH_PATTERNS, weights])
    except RepositoryNotFoundError:
        raise ConfigError(f"no CLIP model {repo_id!r} on the Hugging Face Hub (check "
                          "PGALLERY_CLIP_MODEL; a local directory must exist)") from None
    except _network_errors() as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ConfigError(
            f"the CLIP model {repo_id} is not in the Hugging Face cache ({where}) and could "
            f"not be downloaded ({reason}). Connect to the internet and run again (it is "
            "fetched once), or set PGALLERY_CLIP_MODEL to a saved model directory "
            "(docs/clip.md)") from None


class ClipProvider(EmbeddingProvider):
    """Images and texts through one CLIP model, on the CPU, in eval mode."""

    name = "clip"
    supports_text = True

    def __init__(self, model_path: str | Path, batch_size: int = DEFAULT_BATCH_SIZE):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        _check_backend_installed()
        self.batch_size = int(batch_size)
        spec = str(model_path)
        path = Path(spec).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"the CLIP model path {spec} is a file; give the directory that "
                              "holds config.json (PGALLERY_CLIP_MODEL or model_path)")
        if not path.exists() and _looks_like_path(spec):
            raise ConfigError(f"no CLIP model directory at {spec} (PGALLERY_CLIP_MODEL or "
                              "model_path): save one there with save_pretrained, see docs/clip.md")
        source = str(path) if path.is_dir() else _fetched(spec)
        torch, transformers = _import_backend()   # after the model is found: seconds
        self._torch = torch
        self.model = model_tag(spec)
        with _quiet(transformers):
            self._clip = self._load(transformers, "CLIPModel", source)
            self._image_processor = self._load(transformers, "AutoImageProcessor", source)
            self._tokenizer = self._load(transformers, "AutoTokenizer", source)
        self._clip = self._clip.to("cpu").float().eval()
        self._side = _input_side(self._image_processor)
        self.dimension = int(self._clip.config.projection_dim)
        if self.dimension > COLUMN_DIMENSION:
            raise ConfigError(f"{self.model} has {self.dimension} dimensions; the database "
                              f"column holds at most {COLUMN_DIMENSION}")
        text_config = self._clip.config.text_config
        self._max_tokens = min(int(getattr(self._tokenizer, "model_max_length", 77) or 77),
                               int(text_config.max_position_embeddings))

    @staticmethod
    def _load(transformers, class_name: str, source: str):
        try:
            loader = getattr(transformers, class_name)
            return loader.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            text = str(exc).strip()
            first_line = text.splitlines()[0] if text else type(exc).__name__
            if not Path(source).is_dir():  # transformers' wording suggests it went online
                first_line = "not a directory, and not in the local Hugging Face cache"
            raise ConfigError(
                f"cannot load the CLIP model's {class_name} from {source!r} without a download "
                f"({first_line}). Point PGALLERY_CLIP_MODEL at a directory saved with "
                "save_pretrained (config.json, weights, preprocessor and tokenizer files) or at "
                "a repo id already in the Hugging Face cache; see docs/clip.md") from None

    @classmethod
    def from_settings(cls, settings, **options) -> "ClipProvider":
        """Build from the ``model_path`` option, else ``settings.clip_model_path``
        (PGALLERY_CLIP_MODEL); ``batch_size`` is optional."""
        _check_backend_installed()
        model_path = (options.pop("model_path", None)
                      or getattr(settings, "clip_model_path", None) or DEFAULT_MODEL)
        batch_size = options.pop("batch_size", None) or DEFAULT_BATCH_SIZE
        return cls(model_path, batch_size=int(batch_size))

    # -- the model ----------------------------------------------------------------------

    def _image_vectors(self, images: list) -> np.ndarray:
        """Unnormalised projections of PIL images, shape (n, dimension)."""
        try:
            pixels = self._image_processor(images=images, return_tensors="pt")["pixel_values"]
            with self._torch.no_grad():
                pooled = self._clip.vision_model(pixel_values=pixels.float()).pooler_output
                return self._clip.visual_projection(pooled).numpy()
        except (ValueError, RuntimeError, TypeError) as exc:  # e.g. a 1-pixel-wide image
            raise EmbeddingFailed(f"the CLIP preprocessor or model refused the image ({exc})",
                                  code="InvalidImageSize") from None

    def _text_vectors(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenizer(texts, padding=True, truncation=True,
                                 max_length=self._max_tokens, return_tensors="pt")
        with self._torch.no_grad():
            pooled = self._clip.text_model(input_ids=tokens["input_ids"],
                                           attention_mask=tokens.get("attention_mask")
                                           ).pooler_output
            return self._clip.text_projection(pooled).numpy()

    # -- the interface ------------------------------------------------------------------

    def embed_image(self, source: ImageSource) -> np.ndarray:
        return _unit(self._image_vectors([load_image(source, self._side)])[0], str(source))

    def embed_text(self, text: str) -> np.ndarray:
        if text is None or not str(text).strip():
            raise ArgError("the text to embed is empty")
        return _unit(self._text_vectors([str(text)])[0], repr(text))

    def embed_combined(self, text: str, image: ImageSource) -> np.ndarray:
        """One query from words and a picture: the normalised mean of both unit vectors."""
        return _unit(self.embed_text(text) + self.embed_image(image), "the text and image")

    def embed_images(
        self,
        sources: Iterable[ImageSource],
        on_result: Callable[[ImageResult], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Embed images in batches of ``batch_size``, yielding results in input order."""
        batch: list[ImageSource] = []
        for source in sources:
            batch.append(source)
            if len(batch) == self.batch_size:
                yield from self._embed_batch(batch, on_result)
                batch = []
        if batch:
            yield from self._embed_batch(batch, on_result)

    def _embed_batch(self, sources, on_result) -> Iterator[ImageResult]:
        results: list[ImageResult | None] = [None] * len(sources)
        loaded: list[tuple[int, object]] = []
        for i, source in enumerate(sources):
            try:
                loaded.append((i, load_image(source, self._side)))
            except EmbeddingFailed as exc:
                results[i] = ImageResult(source, error=exc)
        if loaded:
            try:
                vectors = list(self._image_vectors([image for _, image in loaded]))
            except EmbeddingFailed:  # one odd image spoilt the batch: find it, keep the rest
                vectors = [self._one_or_error(image) for _, image in loaded]
            for (i, _), vector in zip(loaded, vectors):
                try:
                    if isinstance(vector, EmbeddingFailed):
                        raise vector
                    results[i] = ImageResult(sources[i], vector=_unit(vector, str(sources[i])))
                except EmbeddingFailed as exc:
                    results[i] = ImageResult(sources[i], error=exc)
        for result in results:
            if on_result:
                on_result(result)
            yield result

    def _one_or_error(self, image) -> np.ndarray | EmbeddingFailed:
        try:
            return self._image_vectors([image])[0]
        except EmbeddingFailed as exc:
            return exc

    def close(self) -> None:
        self._clip = None
        self._image_processor = None
        self._tokenizer = None
