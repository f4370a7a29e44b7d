"""adcraft's performance suite: one table of throughputs and ratios measured in one run -> docs/performance.md.

    python bench/performance.py [--seed 0] [--images 32] [--agreement-images 128] [--score-rows 200000]
                                [--renders 60] [--bootstrap 1000] [--skip-optimize] [--out docs/performance.md]
                                [--only ope]

Measures, on this machine:

1. the fp32 matrix-multiply ceiling (``torch.matmul`` of two square matrices, best of several) and
   EfficientNet-Lite0's throughput (images/s, and its FLOPs/s as a share of that ceiling; the FLOPs of one
   224x224 image are counted by forward hooks on every convolution and linear layer, 2 per multiply-add)
   for PyTorch eager (NCHW, channels-last, batch sizes), TorchScript (traced, frozen), ONNX Runtime fp32,
   ONNX Runtime int8 (dynamic, and static with calibrated activation ranges), OpenVINO fp32 and OpenVINO
   int8 by NNCF post-training quantisation (when installed, extra ``bench``);
   each variant's top-1 ImageNet class is compared with the fp32 eager reference on real product photos
   (``../shared/data/visuelle``; rendered creatives when the bundle is absent);
2. reward-model scoring (creatives/s) of the multi-instance and point-wise CTR models on a simulated market,
   the fast path (``rewards.fast_scoring``) against the networks' forward pass;
3. rendering (creatives/s) of the simulated market's combinations at 512x512;
4. combination-policy training (behaviour-cloning and policy-gradient samples/s) and ``adcraft optimize``'s
   wall time and peak memory on a 120-product market (``bench/optimize.py``'s ``run_optimize``);
5. the off-policy estimators' seconds per estimate and per bootstrap resample on the Open Bandit Dataset,
   and, when obp 0.4.1 is importable, Open Bandit Pipeline's time over adcraft's for each estimator on the
   same arrays with the largest value difference (``bench/ope_obd.py``'s ``obp_side_by_side``).

``--only ope`` measures section 5 alone and replaces its rows in an existing report.

Rates are given by wall time and by this process's CPU time (steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime, UTC
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from markdown import markdown_table
from PIL import Image
from timing import best_of, Timer
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_IMAGES = 64  # images that calibrate static int8 quantisation (never those agreement is measured on)


def row(area: str, measure: str, value: float, unit: str, target: str = "", note: str = "") -> dict:
    return {"area": area, "measure": measure, "value": value, "unit": unit, "target": target, "note": note}


def machine() -> dict[str, str]:
    import onnxruntime

    cpuinfo = cpu_info()
    flags = set(cpuinfo.get("flags", "").split())
    return {
        "CPU": cpuinfo.get("model name", platform.processor() or "unknown"),
        "cores (os.cpu_count)": str(os.cpu_count()),
        "torch": torch.__version__, "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
        "torch threads": str(torch.get_num_threads()), "torch interop threads": str(torch.get_num_interop_threads()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "python": platform.python_version(),
        "openvino": openvino_version(), "int8 dot-product instructions (avx512_vnni / avx_vnni / amx_int8)":
            ", ".join(flag for flag in ("avx512_vnni", "avx_vnni", "amx_int8") if flag in flags) or "none",
    }


def cpu_info() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def openvino_version() -> str:
    try:
        import openvino
    except ImportError:
        return "(not installed)"
    return openvino.__version__


# ---------------------------------------------------------------- 1. FLOP ceiling and the image encoder


def matmul_ceiling(size: int = 1536, repeats: int = 5) -> float:
    """GFLOP/s of ``torch.matmul`` on two fp32 ``size`` x ``size`` matrices (2 size^3 FLOPs), best of ``repeats``."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=generator), torch.randn(size, size, generator=generator)
    return 2 * size**3 / best_of(lambda: a @ b, repeats).wall / 1e9


def count_flops(model: nn.Module, image_size: int) -> int:
    """FLOPs of one image through ``extract_features``: 2 x multiply-adds of every Conv2d and Linear (hooks)."""
    total = [0]

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total[0] += 2 * (output.numel() // output.shape[0]) * per_output
        else:
            total[0] += 2 * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.inference_mode():
        model.extract_features(torch.zeros(1, 3, image_size, image_size))
    for handle in handles:
        handle.remove()
    return total[0]


def real_images(data: Path, count: int, calibration: int, fallback: Callable[[int], list[Image.Image]]
                ) -> tuple[list[Image.Image], list[Image.Image], str]:
    """``count`` images to measure top-1 agreement on, ``calibration`` other images to calibrate int8
    quantisation with, and where they come from (VISUELLE photos, else rendered creatives)."""
    paths = sorted(glob.glob(str(data / "visuelle" / "images" / "*.png")))
    if len(paths) >= count + calibration:
        opened = [Image.open(p).convert("RGBA") for p in paths[:count] + paths[-calibration:]]
        return opened[:count], opened[count:], f"{count} VISUELLE product photos ({calibration} others calibrate int8)"
    images = fallback(count + calibration)
    return images[:count], images[count:], f"{count} rendered creatives of the simulated market"


def onnx_sessions(graph: bytes, threads: int, calibration: np.ndarray) -> dict[str, object]:
    """ONNX Runtime sessions of the Lite0 ONNX ``graph`` (features + logits): fp32; int8 by dynamic
    quantisation; and int8 by static quantisation (QDQ, per-channel weights, activation ranges calibrated on
    ``calibration``, images other than those the agreement is measured on), the kind that uses the CPU's VNNI
    int8 kernels."""
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"pixels": calibration[s:s + 8]} for s in range(0, len(calibration), 8)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = {"ONNX Runtime fp32": onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])}
    quantisers = {
        "ONNX Runtime dynamic int8 (QUInt8 weights)":
            lambda source, target: quantize_dynamic(source, target, weight_type=QuantType.QUInt8),
        f"ONNX Runtime static int8 (QDQ, per-channel, calibrated on {len(calibration)} other images)":
            lambda source, target: quantize_static(
                source, target, Calibration(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8),
    }
    with tempfile.TemporaryDirectory() as tmp:
        source, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
        source.write_bytes(graph)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs a warning per tensor it leaves in float
        try:
            quant_pre_process(str(source), str(prepared))  # shape inference + graph clean-up, as ORT recommends
            for name, quantise in quantisers.items():
                target = Path(tmp) / "int8.onnx"
                try:
                    quantise(str(prepared), str(target))
                    sessions[name] = onnxruntime.InferenceSession(
                        target.read_bytes(), options, providers=["CPUExecutionProvider"])
                except Exception as error:  # noqa: BLE001  (a failed variant is reported, not fatal)
                    print(f"{name} failed: {error}")
        finally:
            root.setLevel(level)
    return sessions


def openvino_models(graph: bytes, calibration: np.ndarray) -> dict[str, object]:
    """OpenVINO models of the same ONNX graph: fp32 and, when NNCF is installed, int8 by its post-training
    quantisation (calibrated on ``calibration``). Empty without openvino.

    NNCF's accuracy-controlled quantisation (fp32 restored op by op until agreement drops at most 1 point)
    is left out: on these photos it restored every operation, so it measured as fp32, after about 7 minutes
    of re-ranking."""
    try:
        import openvino
    except ImportError:
        print("openvino is not installed (pip install adcraft[bench]): its rows are left out")
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "fp32.onnx"
        source.write_bytes(graph)
        fp32 = openvino.Core().read_model(str(source))
    models: dict[str, object] = {"OpenVINO fp32": fp32}
    try:
        import nncf
    except ImportError:
        print("nncf is not installed (pip install adcraft[bench]): the OpenVINO int8 rows are left out")
        return models
    nncf.set_log_level(logging.ERROR)
    batches = [{"pixels": calibration[s:s + 8]} for s in range(0, len(calibration), 8)]
    plain = nncf.quantize(fp32, nncf.Dataset(batches), subset_size=len(batches))
    models[f"OpenVINO int8 (NNCF, calibrated on {len(calibration)} other images; {fake_quantizers(plain)} "
           "quantisers)"] = plain
    return models


def fake_quantizers(model) -> int:
    """How many FakeQuantize operations (int8 quantisation points) an OpenVINO model has."""
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def openvino_request(model, threads: int):
    """A CPU inference request of an OpenVINO ``model`` (latency hint, fp32 where not quantised) and its logits."""
    import openvino

    compiled = openvino.Core().compile_model(model, "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    return compiled.create_infer_request(), compiled.output("logits")


def image_encoder_rows(args: argparse.Namespace, fallback: Callable[[int], list[Image.Image]]) -> list[dict]:
    from adcraft.features.image_encoder import ImageEncoderConfig, _pretrained_lite0, build_image_encoder
    from adcraft.features.onnx_runtime import export_onnx

    threads = torch.get_num_threads()
    ceilings = [matmul_ceiling()]  # re-measured between the variants: this machine's clock drifts by ~1.5x
    model, _ = _pretrained_lite0(224)
    flops = count_flops(model, 224)
    images, calibration_images, source = real_images(args.data, args.agreement_images, CALIBRATION_IMAGES, fallback)
    reference = build_image_encoder(ImageEncoderConfig(batch_size=8))
    pixels = torch.from_numpy(np.stack([reference.preprocess(image) for image in images]))
    calibration = np.stack([reference.preprocess(image) for image in calibration_images])
    with torch.inference_mode():
        reference_top1 = model(pixels.contiguous(memory_format=torch.channels_last)).argmax(1).numpy()
    timed = pixels[: args.images]

    def torch_variant(network: Callable, layout: torch.memory_format, batch: int) -> Callable[[], np.ndarray]:
        def run(x: torch.Tensor = timed) -> np.ndarray:
            outs = []
            with torch.inference_mode():
                for start in range(0, len(x), batch):
                    outs.append(network(x[start:start + batch].contiguous(memory_format=layout)))
            return torch.cat(outs).numpy()
        return run

    def logits(x: torch.Tensor) -> torch.Tensor:
        return model(x)

    variants: dict[str, Callable] = {
        "eager NCHW, batch 8": torch_variant(logits, torch.contiguous_format, 8),
        "eager channels-last, batch 8 (encoder default)": torch_variant(logits, torch.channels_last, 8),
        "eager channels-last, batch 32": torch_variant(logits, torch.channels_last, 32),
    }
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            example = torch.zeros(8, 3, 224, 224).contiguous(memory_format=torch.channels_last)
            scripted = torch.jit.freeze(torch.jit.trace(model, example).eval())
        variants["TorchScript traced + frozen, channels-last, batch 8"] = torch_variant(
            scripted, torch.channels_last, 8)
    except Exception as error:  # noqa: BLE001
        print(f"TorchScript failed, its row is left out: {error}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_onnx(model, 224)  # one export for ONNX Runtime and OpenVINO
        sessions = onnx_sessions(graph, threads, calibration)
    for name, session in sessions.items():
        for batch in (8, 32):
            def run_onnx(x: torch.Tensor = timed, session=session, batch: int = batch) -> np.ndarray:
                array = x.numpy()
                return np.concatenate([session.run(["logits"], {"pixels": array[s:s + batch]})[0]
                                       for s in range(0, len(array), batch)])
            variants[f"{name}, batch {batch}"] = run_onnx
    openvino = openvino_models(graph, calibration)
    for name, openvino_model in openvino.items():
        request, output = openvino_request(openvino_model, threads)
        for batch in (8, 32):
            def run_openvino(x: torch.Tensor = timed, batch: int = batch, request=request, output=output
                             ) -> np.ndarray:
                array = x.numpy()
                return np.concatenate([request.infer({"pixels": array[s:s + batch]})[output].copy()
                                       for s in range(0, len(array), batch)])
            variants[f"{name}, batch {batch}"] = run_openvino
    measured = []
    for name, run in variants.items():
        agreement = float(np.mean(run(pixels).argmax(1) == reference_top1))  # also the warm-up
        timer = best_of(run, 2, warm_up=False)
        measured.append((name, len(timed) / timer.wall, len(timed) / timer.cpu, agreement))
        ceilings.append(matmul_ceiling())
    ceiling = max(ceilings)  # the highest rate the machine reached: the shares below are not flattered by a slow spell
    rows = [row("compute", f"fp32 matmul ceiling (1536x1536, best of 5; highest of {len(ceilings)} measurements "
                "taken between the encoder variants)", ceiling, "GFLOP/s",
                note=f"{threads} torch threads; the measurements ranged {min(ceilings):.0f}-{ceiling:.0f} GFLOP/s")]
    for name, rate, cpu_rate, agreement in measured:
        rows.append(row("image encoder", f"Lite0 {name}", rate, "images/s", "",
                        f"{rate * flops / 1e9 / ceiling:.0%} of ceiling (wall); {cpu_rate:.1f} "
                        f"images/CPU-s; top-1 agreement {agreement:.1%}"))
    rows.append(row("image encoder", "Lite0 FLOPs per 224x224 image (conv + linear, by hooks)", flops / 1e9,
                    "GFLOP", note=f"agreement measured on {source}; goal >= 60% of ceiling, >= 99% agreement"))
    for runtime in ("torch", "onnx"):
        encoder = build_image_encoder(ImageEncoderConfig(batch_size=8, runtime=runtime))
        timer = best_of(lambda encoder=encoder: encoder.encode(images[: args.images]), 1)
        rows.append(row("image encoder", f"ImageEncoder.encode end to end, runtime={runtime!r}",
                        args.images / timer.wall, "images/s", note="preprocessing included"))
    return rows


# ---------------------------------------------------------------- 2-4. markets: scoring, rendering, training


def simulated_market(seed: int, products: int, impressions: int, workdir: Path):
    from adcraft.market import load_market
    from adcraft.simulator import SimulatorConfig, simulate_market

    folder = workdir / f"market-{seed}-{products}-{impressions}"
    if not (folder / "market.json").is_file():
        simulate_market(SimulatorConfig(seed=seed, n_products=products, n_impressions=impressions), folder,
                        overwrite=True)
    return load_market(folder)


def random_rows(market, n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(seed)
    products = market.products["product_id"].tolist()
    usable = {(p, s): market.usable_elements(p, s)["element_id"].tolist() for p in products
              for s in market.config.slots}
    pids = [products[i] for i in rng.integers(0, len(products), n)]
    combos = [[u[rng.integers(len(u))] for u in (usable[(p, s)] for s in market.config.slots)] for p in pids]
    return pids, combos


def scoring_rows(market, args: argparse.Namespace) -> tuple[list[dict], object]:
    from adcraft.rewards.ctr import CTRTrainer
    from adcraft.rewards.encoding import make_batch
    from adcraft.rewards.mil import MILTrainer

    mil, ctr = MILTrainer().fit(market), CTRTrainer().fit(market)
    pids, combos = random_rows(market, args.score_rows, args.seed)
    rows = []
    for name, model, traffic in (("multi-instance (MILModel)", mil, mil._contexts(None)),
                                 ("point-wise CTR (PointwiseCTRModel)", ctr, ctr.contexts)):
        n = min(args.score_rows, 20_000)

        def forward(model=model, traffic=traffic, n=n) -> np.ndarray:
            out = np.zeros(n)
            with torch.no_grad():
                for context, weight in traffic:
                    batch = make_batch(model.vocab, model.config.encoding, pids[:n], combos[:n], [context] * n)
                    out += weight * torch.sigmoid(model.network(batch)).numpy()
            return out

        slow = best_of(forward, 1)
        fast = best_of(lambda model=model: model.predict(pids, combos), 2)
        diff = float(np.abs(model.predict(pids[:n], combos[:n]) - forward()).max())
        rows.append(row("scoring", f"{name}: network forward pass per row", n / slow.wall, "creatives/s",
                        note=f"{len(traffic)} traffic contexts averaged; {n / slow.cpu:,.0f} per CPU-s"))
        speedup = (slow.wall / n) / (fast.wall / len(pids))
        rows.append(row("scoring", f"{name}: predict (per-element tables)", len(pids) / fast.wall, "creatives/s",
                        ">= 100k/s", f"{len(pids) / fast.cpu:,.0f} per CPU-s; {speedup:.1f}x the forward pass; "
                        f"max abs diff {diff:.1e}"))
    return rows, mil


def render_rows(market, args: argparse.Namespace) -> list[dict]:
    from adcraft.render.from_market import MarketRenderer

    renderer = MarketRenderer(market)
    per_product = 6
    pids, combos = random_rows(market, args.renders, args.seed + 1)
    order = np.argsort(np.asarray(pids), kind="stable")  # as optimize renders: a product's creatives together
    grouped = [(pids[i], combos[i]) for i in order]
    for pid, combo in grouped[: per_product]:
        renderer.render(pid, combo)
    rows = []
    for name, jobs in (("grouped by product", grouped), ("products interleaved", list(zip(pids, combos)))):
        with Timer() as timer:
            for pid, combo in jobs:
                renderer.render(pid, combo)
        rows.append(row("rendering", f"compositor {market.config.canvas[0]}x{market.config.canvas[1]}, {name}",
                        len(jobs) / timer.wall, "creatives/s", ">= 50/s", f"{len(jobs) / timer.cpu:.1f} per CPU-s"))
    return rows


def combo_rows(market, mil, args: argparse.Namespace) -> list[dict]:
    from dataclasses import replace

    from adcraft.generate.combo import ComboConfig, ComboTrainer
    from adcraft.generate.combo_search import logged_combinations

    config = ComboConfig()
    config = replace(config, bc=replace(config.bc, epochs=args.bc_epochs), rl=replace(config.rl, steps=args.rl_steps))
    logged = len(logged_combinations(market, config.policy.use_context))

    def reward(product_ids, combos, contexts=None):
        return mil.predict(list(product_ids), [list(c) for c in combos], contexts)

    with Timer() as clone:
        ComboTrainer(replace(config, rl=replace(config.rl, steps=0))).fit(market, None)
    with Timer() as both:
        ComboTrainer(config).fit(market, reward)
    rl = config.rl
    rl_samples = rl.steps * min(rl.products_per_step, len(market.products)) * rl.samples_per_product
    rl_seconds = max(both.wall - clone.wall, 1e-9)
    return [
        row("policy training", "behaviour cloning", config.bc.epochs * logged / clone.wall, "samples/s",
            note=f"{config.bc.epochs} epochs x {logged} logged combinations"),
        row("policy training", "policy gradient (incl. reward calls)", rl_samples / rl_seconds, "samples/s",
            note=f"{rl.steps} steps x {rl_samples // rl.steps} samples; BC+RL run minus BC-only run"),
    ]


def optimize_rows(args: argparse.Namespace) -> list[dict]:
    from optimize import run_optimize, simulated

    market_dir = simulated(args.optimize_seed, args.workdir, args.optimize_products, args.optimize_impressions)
    with tempfile.TemporaryDirectory(prefix="adcraft-cache-") as cache:
        seconds, peak = run_optimize(market_dir, args.workdir / "optimize-run", Path(cache))
    note = f"{args.optimize_products} products, {args.optimize_impressions} impressions, seed {args.optimize_seed}"
    return [row("optimize", "adcraft optimize wall time (fresh process, empty cache)", seconds / 60, "min",
                "<= 10 min", note),
            row("optimize", "adcraft optimize peak resident memory", peak / 1024, "GB", "<= 4 GB", note)]


# ---------------------------------------------------------------- 5. off-policy estimators on OBD


def ope_rows(args: argparse.Namespace) -> list[dict]:
    from ope_obd import (ESTIMATORS, N_ITEMS, OBP_MISSING, Direction, adcraft_arrays, bts_slot_tables, load_log,
                         obp_side_by_side)

    from adcraft.evaluate.ope import estimate_policy_value

    obd = args.data / "obd"
    if not (obd / "random_all.csv.gz").is_file():
        return [row("off-policy evaluation", "OBD arrays", float("nan"), "", note=f"{obd} not found: skipped")]
    random, bts = load_log(obd / "random_all.csv.gz", "random"), load_log(obd / "bts_all.csv.gz", "bts")
    table = bts_slot_tables(bts)["harmonic mean of logged propensities per (slot, item), renormalised"]
    direction = Direction("bts<-random", random, bts, table[random.slot])
    target, predictions, target_predictions = adcraft_arrays(direction)
    rows = []
    for estimator in ESTIMATORS:
        def run(draws: int, estimator=estimator) -> None:
            estimate_policy_value(random.click, random.propensity, target, estimator, predictions,
                                  target_predictions, n_bootstrap=draws, seed=args.seed)
        point, full = best_of(lambda: run(2), 3), best_of(lambda: run(args.bootstrap), 1)
        per_draw = max(full.wall - point.wall, 0.0) / (args.bootstrap - 2)
        rows.append(row("off-policy evaluation", f"adcraft {estimator.label} on OBD bts<-random "
                        f"({random.n} rows, {N_ITEMS} items)", full.wall, "s per estimate",
                        note=f"point estimate {point.wall * 1e3:.2f} ms; {per_draw * 1e6:.0f} µs per bootstrap "
                             f"resample ({args.bootstrap} resamples)"))
    try:
        comparison = obp_side_by_side(direction)
    except ImportError:
        rows.append(row("off-policy evaluation", "Open Bandit Pipeline on the same arrays", float("nan"), "",
                        note=OBP_MISSING))
        return rows
    for compared in comparison:
        rows.append(row("off-policy evaluation", f"obp {compared['obp_version']} {compared['obp_estimator']} time / "
                        f"adcraft {compared['estimator']} time, same OBD arrays", compared["obp_time / adcraft_time"],
                        "x", note=f"point estimate, fastest of several: adcraft {compared['adcraft_ms']:.3f} ms, "
                                  f"obp {compared['obp_ms']:.2f} ms ({compared['obp_unchecked_ms']:.2f} ms without "
                                  f"its input checks); absolute value difference {compared['abs_diff']:.1e}"))
    rows.append(row("off-policy evaluation", "largest absolute difference of adcraft's and obp's values above",
                    max(compared["abs_diff"] for compared in comparison), "CTR",
                    note=f"{max(compared['abs_diff'] for compared in comparison):.1e}; same rewards, items, slots, "
                         "pscores, target item probabilities per slot and reward-model q(slot, item); "
                         "bench/ope_obd.py explains the comparison"))
    return rows


# ---------------------------------------------------------------- report


def rendered_creatives(market) -> Callable[[int], list[Image.Image]]:
    def make(count: int) -> list[Image.Image]:
        from adcraft.render.from_market import MarketRenderer

        renderer = MarketRenderer(market)
        return [renderer.render(p, c).image for p, c in zip(*random_rows(market, count, 99))]
    return make


def facts_table(facts: dict[str, str]) -> str:
    """The machine table of the report: one row per setting."""
    return markdown_table(pd.DataFrame({"setting": list(facts), "value": list(facts.values())}))


def write_report(path: Path, args: argparse.Namespace, facts: dict[str, str], table: pd.DataFrame,
                 seconds: float) -> None:
    text = "\n\n".join([
        "# Performance",
        "Measured by `bench/performance.py` in one run (regenerate with `python bench/performance.py`). "
        f"Seed {args.seed}; suite wall time {seconds / 60:.1f} min. Rates are by wall time; the notes give "
        "rates by this process's CPU time, which are steadier when the machine is shared.",
        facts_table(facts),
        markdown_table(table, digits=2),
        "Image-encoder shares of the ceiling are the model's counted FLOPs per second (wall time, network "
        "only, preprocessed 224x224 inputs) over the matmul ceiling. Top-1 agreement is with the fp32 eager "
        "network on the same images. Scoring uses a simulated market "
        f"({args.products} products, {args.impressions} impressions) and {args.score_rows:,} random usable "
        "combinations, each averaged over the model's traffic contexts.",
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def replace_area_rows(path: Path, area: str, table: pd.DataFrame) -> None:
    """Replace the rows of ``area`` in the main table of an existing report, leaving every other line as it is."""
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: run the whole suite once before --only")
    lines = path.read_text().splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith(f"| {area} |")]
    if not found or found[-1] - found[0] != len(found) - 1:
        raise SystemExit(f"{path} has no single block of '{area}' rows to replace: run the whole suite")
    new_rows = markdown_table(table, digits=2).splitlines()[2:]
    path.write_text("\n".join(lines[:found[0]] + new_rows + lines[found[-1] + 1:]) + "\n")


def replace_facts(path: Path, facts: dict[str, str]) -> None:
    """Replace the machine table (the first table) of an existing report with ``facts``."""
    lines = path.read_text().splitlines()
    start = lines.index("| setting | value |")
    end = start + next(i for i, line in enumerate(lines[start:]) if not line.startswith("|"))
    path.write_text("\n".join(lines[:start] + facts_table(facts).splitlines() + lines[end:]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--images", type=int, default=32, help="images per throughput measurement")
    parser.add_argument("--agreement-images", type=int, default=128, help="real images for top-1 agreement")
    parser.add_argument("--products", type=int, default=30, help="products of the simulated scoring market")
    parser.add_argument("--impressions", type=int, default=20_000)
    parser.add_argument("--score-rows", type=int, default=200_000)
    parser.add_argument("--renders", type=int, default=60)
    parser.add_argument("--bc-epochs", type=int, default=10)
    parser.add_argument("--rl-steps", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--optimize-seed", type=int, default=201)
    parser.add_argument("--optimize-products", type=int, default=120)
    parser.add_argument("--optimize-impressions", type=int, default=150_000)
    parser.add_argument("--skip-optimize", action="store_true", help="leave out the optimize run (minutes)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "performance")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--only", choices=["ope", "encoder"],
                        help="measure only this section (5, off-policy estimators; or 1, the ceiling and the image "
                        "encoder) and replace its rows in an existing --out, keeping the other rows and text")
    args = parser.parse_args()
    if args.only == "ope":
        table = pd.DataFrame(ope_rows(args))
        table.loc[table.index[-1], "note"] += (
            f"; these rows re-measured alone with `--only ope` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(table.to_string(index=False))
        replace_area_rows(args.out, "off-policy evaluation", table)
        print(f"replaced the off-policy evaluation rows of {args.out}")
        return
    if args.only == "encoder":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        args.workdir.mkdir(parents=True, exist_ok=True)
        market = simulated_market(args.seed, args.products, args.impressions, args.workdir)
        table = pd.DataFrame(image_encoder_rows(args, rendered_creatives(market)))
        table.loc[table.index[-1], "note"] += (
            f"; the compute and image encoder rows re-measured alone with `--only encoder` on "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(table.to_string(index=False))
        replace_area_rows(args.out, "compute", table[table["area"] == "compute"])
        replace_area_rows(args.out, "image encoder", table[table["area"] == "image encoder"])
        replace_facts(args.out, machine())
        print(f"replaced the compute and image encoder rows of {args.out}")
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"seeds: suite {args.seed}, optimize market {args.optimize_seed}; torch threads {torch.get_num_threads()}")
    started = time.perf_counter()
    facts = machine()
    market = simulated_market(args.seed, args.products, args.impressions, args.workdir)
    rows = image_encoder_rows(args, rendered_creatives(market))
    print(pd.DataFrame(rows).to_string(index=False), flush=True)
    scored, mil = scoring_rows(market, args)
    rows += scored + render_rows(market, args) + combo_rows(market, mil, args) + ope_rows(args)
    print(pd.DataFrame(rows).to_string(index=False), flush=True)
    if not args.skip_optimize:
        rows += optimize_rows(args)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    write_report(args.out, args, facts, table, time.perf_counter() - started)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
