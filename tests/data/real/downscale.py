"""How this folder was made from ../shared/data (kept for provenance; rerun only to rebuild it).

    python tests/data/real/downscale.py [SHARED_DATA]

Photos are shrunk with Pillow (LANCZOS, JPEG quality 85, the original EXIF block copied verbatim); the files
listed in EXACT, and every other file, are copied byte for byte, except that SOURCE.txt gets a note on this copy."""
import shutil, sys
from pathlib import Path
from PIL import Image

HERE = Path(__file__).resolve().parent
SETS = {'speciesnet': ('speciesnet_test_images', 1024), 'ena24': ('ena24_small', 512)} # folder here: (folder in shared, longest side)
EXACT = {'african_elephants_cmyk.jpg', 'african_elephants_truncated_file.jpg', # odd formats the tests are about
         'african_elephants_with_exif_orientation.jpg', 'african_elephants_bw.jpg'}
QUALITY = 85
NOTE = ("\nTHIS COPY (iwildcam_nb tests/data/real/{name}, made by tests/data/real/downscale.py from ../shared/data/{folder}):\n"
        "  JPEGs downscaled with Pillow to at most {size} px on the longest side (LANCZOS, quality 85, EXIF block kept verbatim,\n"
        "  so EXIF PixelXDimension/PixelYDimension still give the original size){exact}. All other files byte-exact.\n")
MD_NOTE = ("  md_results_mdv5a.json (byte-exact) keeps the original width/height; its boxes are normalized, so they fit the\n"
           "  downscaled photos as they fit the originals.\n")

def shrink(src:Path, dst:Path, size:int):
    "Write `src` to `dst` with its longest side at most `size` px, keeping its EXIF block."
    with Image.open(src) as im:
        exif = im.info.get('exif')
        im = im.convert('RGB') if im.mode not in ('RGB', 'L') else im.copy()
    im.thumbnail((size, size), Image.LANCZOS)
    im.save(dst, quality=QUALITY, **({'exif': exif} if exif else {}))

def main(shared:Path):
    for name,(folder,size) in SETS.items():
        out = HERE/name; out.mkdir(exist_ok=True)
        for src in sorted((shared/folder).iterdir()):
            if src.suffix.lower() == '.jpg' and src.name not in EXACT: shrink(src, out/src.name, size)
            elif src.is_file(): shutil.copyfile(src, out/src.name)
        exact = sorted(EXACT & {p.name for p in out.iterdir()})
        with open(out/'SOURCE.txt', 'a') as f: f.write(NOTE.format(name=name, folder=folder, size=size,
            exact=f'; byte-exact, not downscaled: {", ".join(exact)}' if exact else '') + (MD_NOTE if (out/'md_results_mdv5a.json').exists() else ''))

if __name__ == '__main__': main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3]/'shared'/'data')
