"""Converters from the public annotation formats to the official OFA TSV layouts (reference §4, §5, §9.3).

    python -m ofa_plugin.convert.coco_captions   COCO captions (Karpathy split or COCO JSON) -> caption TSVs
    python -m ofa_plugin.convert.vqav2           VQA v2 questions + annotations -> vqa_gen TSV (+ ans2label pickle)
    python -m ofa_plugin.convert.refcoco         refer-API refs pickle + instances.json -> refcoco TSVs per split
    python -m ofa_plugin.convert.snli_ve         SNLI-VE jsonl -> snli_ve TSV
    python -m ofa_plugin.convert.imagenet        class folders -> image_classify TSV (+ class2label pickle)

Each takes the annotation files and an image folder, writes images as base64 of the original file bytes
(or, with `--image-column path`, as paths relative to the TSV) and logs its progress. Bad input stops the
conversion with one error line naming the file and the record (annotation, line, image) at fault.
Shared pieces are in `common`.
"""
