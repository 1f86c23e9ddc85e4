"""`edgedet train`: fine-tune a model on COCO-format data (resumable)."""

from __future__ import annotations

from .common import positive

HELP = "fine-tune a model on COCO-format data (resumable)"


def add_arguments(p):
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="training annotation json")
    p.add_argument("--images", help="training image folder (default: images/ beside the json)")
    p.add_argument("--val-data", help="validation annotation json (per-epoch mAP)")
    p.add_argument("--val-images")
    p.add_argument("--weights", help="initial effdet-layout checkpoint")
    p.add_argument("--epochs", type=positive, default=10)
    p.add_argument("--imgsz", type=positive)
    p.add_argument("--batch", type=positive, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pth exists")
    p.add_argument("--out", required=True)


def run(a) -> int:
    from edgedet.progress import progress
    from edgedet.train import TrainConfig, train

    cfg = TrainConfig(
        model=a.model,
        data=a.data,
        images=a.images,
        val_data=a.val_data,
        val_images=a.val_images,
        out=a.out,
        weights=a.weights,
        epochs=a.epochs,
        imgsz=a.imgsz,
        batch=a.batch,
        lr=a.lr,
        workers=a.workers,
        device=a.device,
        seed=a.seed,
        resume=not a.no_resume,
    )
    result = train(cfg, log=lambda m: print(m, flush=True), progress=lambda it, desc: progress(it, desc=desc))
    if a.val_data:
        print(f"best validation AP {result['best_val_AP']:.4f}; checkpoints in {result['out']}")
    else:  # no AP was measured: say so rather than print a placeholder
        print(f"no validation set (--val-data), no AP measured; checkpoints in {result['out']}")
    return 0
