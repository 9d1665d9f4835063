"""The image intake: every image pgallery reads comes in here, whoever asks.

    from pgallery.intake import AddressPolicy, read_image
    image = read_image("photo.jpg")                    # a file, bytes, or an http(s) URL
    image = read_image(url, policy=AddressPolicy.PUBLIC_ONLY, max_bytes=20 << 20,
                       max_pixels=40_000_000)          # what the web app reads for strangers
    image.data, image.name, image.format, image.size, image.sha256

The providers (local, clip, Azure's upload check), the loader, the thumbnails and the web
app's uploads and image URLs all read through :func:`read_image`, so a bad image fails the
same typed error (pgallery.errors) wherever it comes from; the class name is the ``code``
the loader records per image in ``embedding_failure``:

    ImageNotFound        the file does not exist
    EmptyImage           zero bytes                          (these three are NotAnImage)
    UnreadableImage      not an image, a format Pillow cannot read or the caller does not
                         accept, a directory, or a file that cannot be opened
    TruncatedImage       the header is readable but the pixel data is cut short or corrupt
    ImageTooLarge        over the byte or pixel limit, or Pillow's decompression-bomb
                         limit (about 179 megapixels)
    ImageDownloadFailed  an http(s) image could not be fetched (HTTP status, network)
    BadImageUrl          a URL that may not be fetched (scheme, an address the policy
                         refuses, a redirect under PUBLIC_ONLY, a certificate)

Checking decodes the pixels once (JPEGs at 1/8 scale, which still reads every byte), so a
truncated file fails here and not halfway through a provider; a provider that decodes
them itself at once asks ``decode=False`` and meets the same error in its own decode. URLs are fetched by one
fetcher (fetch.py) whose :class:`AddressPolicy` is the caller's: ``ANY`` for the CLI,
which may read from this machine, ``PUBLIC_ONLY`` for the web. A provider that decodes the
pixels itself opens the checked bytes and works inside :func:`decoding`::

    checked = read_image(source)
    with checked.open() as image, decoding(checked.name):
        rgb = image.convert("RGB")
"""

from pgallery.intake.fetch import AddressPolicy, is_url
from pgallery.intake.reader import (DOWNLOAD_TIMEOUT, MAX_BYTES, CheckedImage, check_image,
                                    content_hash, decoding, read_image)

__all__ = ["AddressPolicy", "CheckedImage", "DOWNLOAD_TIMEOUT", "MAX_BYTES", "check_image",
           "content_hash", "decoding", "is_url", "read_image"]
