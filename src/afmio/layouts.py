"""Names fixed by the bundle layouts, shared by their readers and their writers.

Readers and writers never import each other; what both must agree on lives here.
"""

# --- OME-TIFF (playNano's layout) ---
#: Private tag holding the provenance as UTF-8 JSON.
OME_PROVENANCE_TAG = 65000
#: Private tag holding the processed layer names as a JSON list.
OME_LAYERS_TAG = 65001
#: Key of the per-frame metadata columns under the provenance's afmio key.
OME_FRAME_METADATA_KEY = "frame_metadata"

# --- Zarr (afmio's own, with OME-Zarr 0.5 image metadata) ---
#: ``attributes["afmio"]["format"]`` of afmio's stores and the layout version.
ZARR_STORE_FORMAT, ZARR_STORE_VERSION = "afmio-bundle", 1
#: Array paths of the current data (the NGFF level) and of the timestamps.
ZARR_DATA_PATH, ZARR_TIMESTAMPS_PATH = "0", "timestamps"
#: ``dimension_names`` of the frame arrays (the NGFF axis names).
ZARR_DIMS = ("t", "y", "x")
#: A non-finite float in afmio's Zarr metadata is ``{ZARR_FLOAT_KEY: "NaN"}`` (strict JSON).
ZARR_FLOAT_KEY = "$float"
