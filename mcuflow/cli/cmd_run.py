"""``mcuflow run``: the host tail runner against a device on a serial port."""

from __future__ import annotations

import json
import sys

import click

from mcuflow.cli.main import cli
from mcuflow.cli.options import data_option
from mcuflow.errors import ConfigError, McuflowError


class SamplesLost(McuflowError):
    """Some samples got no valid answer (they are listed in the output)."""


class ParityMismatch(McuflowError):
    """Answers that differ from the numpy reference (``--fail-on-mismatch``)."""

    exit_code = 3


@cli.command("run")
@click.option("--port", "port", required=True, help="Serial port URL: /dev/ttyACM0, socket://host:port, a pty path.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), help="Checkpoint (.pt) the device runs.")
@click.option("--export", "export_dir", type=click.Path(file_okay=False), help="Export directory of that model.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="MNIST directory (the test split is sent).")
@data_option("its test split is sent, normalised as --model's checkpoint records")
@click.option(
    "--input", "input_path", type=click.Path(dir_okay=False), help=".npy of inputs: int8, uint8 pixels or float."
)
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), help=".npy of labels for --input.")
@click.option("--samples", type=click.IntRange(min=1), help="Send only the first N inputs.")
@click.option("--timeout", type=click.FloatRange(min=0.01), default=2.0, show_default=True, help="Seconds per answer.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True, help="Resends after a timeout.")
@click.option("--baud", type=int, default=115200, show_default=True)
@click.option("--connect-timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for the port.")
@click.option(
    "--tail",
    "tail_backend",
    default="auto",
    show_default=True,
    help="auto, numpy, onnx or torch (the export's or checkpoint's tail), or a tail .onnx file. An export of an "
    "ONNX head has no tail: without one, offloaded samples are reported unfinished.",
)
@click.option(
    "--max-lost",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Stop sending after this many lost answers in a row (0: never); the rest count as lost.",
)
@click.option(
    "--input-encoding",
    type=click.Choice(["auto", "dense", "bitmap"]),
    default="auto",
    show_default=True,
    help="INFER inputs dense, or bitmap-encoded (INFER_SPARSE); auto: bitmap when the device supports it and it is smaller.",
)
@click.option("--jsonl", is_flag=True, help="One JSON object per sample and a final summary on stdout.")
@click.option("--bye", is_flag=True, help="Send BYE at the end (the device exits; ends a QEMU session).")
@click.option(
    "--fail-on-mismatch",
    is_flag=True,
    help="With --export: exit with status 3 when an answer differs from the numpy reference (default: report it).",
)
def run_cmd(
    port,
    model_path,
    export_dir,
    data_dir,
    data,
    input_path,
    labels_path,
    samples,
    timeout,
    retries,
    baud,
    connect_timeout,
    tail_backend,
    max_lost,
    input_encoding,
    jsonl,
    bye,
    fail_on_mismatch,
) -> None:
    """Send inputs to a device, finish offloaded samples with the tail, report.

    The device's model hash (from HELLO) must match the export's model_hash
    (with --export) or the checkpoint's (mcuflow.checkpoint.model_hash).
    With --export every answer is also checked against the numpy int8
    reference (exit decision, class, offloaded bytes) and mismatches are reported.
    """
    import numpy as np

    from mcuflow.link import DeviceClient, open_transport
    from mcuflow.link.messages import CAP_INFER_SPARSE
    from mcuflow.tail import InputQuant, check_model_hash, load_inputs, run_session

    if model_path is None and export_dir is None:
        raise ConfigError("give --model CKPT and/or --export DIR (the model the device runs)")
    if sum(v is not None for v in (data_dir, data, input_path)) > 1:
        raise ConfigError("give one of --data-dir, --data and --input")
    if labels_path is not None and input_path is None:
        raise ConfigError("--labels goes with --input")

    model = None
    expected_hash, hash_source = None, None
    if model_path is not None:
        from mcuflow import checkpoint

        model = checkpoint.load(model_path)
        expected_hash, hash_source = checkpoint.model_hash(model), f"checkpoint {model_path}"
    quant = InputQuant()
    if export_dir is not None:
        from mcuflow.manifest import ExportManifest

        export_hash = ExportManifest.read(export_dir).model_hash
        if expected_hash is not None and export_hash != expected_hash:
            raise ConfigError(f"export {export_dir} was not made from {model_path} (model hashes differ)")
        expected_hash, hash_source = export_hash, f"export {export_dir}"
        quant = InputQuant.from_export(export_dir)
    tail = _tail(model, export_dir, tail_backend)
    # The user's data is read before the port is opened, so a mistake in it costs no connection.
    # MNIST (the default) stays where it was read before: after HELLO.
    own = None if data is None else _test_split(data, None, model)

    with open_transport(port, baudrate=baud, connect_timeout=connect_timeout) as transport:
        sparse = {"auto": None, "dense": False, "bitmap": True}[input_encoding]
        client = DeviceClient(transport, timeout=timeout, retries=retries, sparse_inputs=sparse)
        info = client.hello()
        if sparse and not info.capabilities & CAP_INFER_SPARSE:
            raise ConfigError(f"the device ({info.board}) does not accept bitmap-encoded inputs (INFER_SPARSE)")
        check_model_hash(info.model_hash_hex, expected_hash, hash_source)
        if info.input_scale is not None:  # the device says how its inputs are quantised
            device_quant = InputQuant(float(np.float32(info.input_scale)), int(info.input_zero_point))
            if export_dir is not None and (np.float32(quant.scale), quant.zero_point) != (
                np.float32(device_quant.scale),
                device_quant.zero_point,
            ):
                raise ConfigError(
                    f"the device quantises inputs with scale {device_quant.scale:.6g} and zero point "
                    f"{device_quant.zero_point}, the export {export_dir} with {quant.scale:.6g} and {quant.zero_point}"
                )
            if export_dir is None:
                quant = device_quant
        labels = None
        if input_path is not None:
            inputs = load_inputs(input_path, info.input_len)
            if labels_path is not None:
                try:
                    labels = np.load(labels_path, allow_pickle=False).reshape(-1)
                except (OSError, ValueError, EOFError, AttributeError) as err:  # AttributeError: an .npz
                    raise ConfigError(f"cannot read labels from {labels_path}: {err}") from None
                if len(labels) < len(inputs):
                    raise ConfigError(f"{labels_path} has {len(labels)} labels for {len(inputs)} inputs")
        else:
            test, note = own or _test_split(None, data_dir, model)
            inputs, labels = test.inputs(np.float64), test.y
            if inputs.shape[1] != info.input_len:
                raise ConfigError(
                    f"the {test.name} samples have {inputs.shape[1]} values ({test.input_shape}), "
                    f"the device expects {info.input_len}"
                )
            if note and not jsonl:
                click.echo(f"note: {note}")
        if samples is not None:
            inputs = inputs[:samples]
            labels = labels[:samples] if labels is not None else None
        q = quant.quantize(inputs)
        check = None if export_dir is None else ReferenceCheck.of(export_dir, q, tail)

        say = (lambda s: None) if jsonl else click.echo
        say(
            f"device: {info.board}, firmware {info.firmware_version[0]}.{info.firmware_version[1]}, "
            f"model {info.model_hash_hex[:16]}..., input {info.input_len}, intermediate {info.intermediate_len}; "
            f"tail: {tail.kind}"
        )
        from mcuflow.tail import SessionSummary

        summary = SessionSummary()
        stream = run_session(
            client, q, tail, labels, summary, keep_intermediate=check is not None, max_consecutive_lost=max_lost
        )
        for rec in stream:
            problem = None if check is None else check.problem(rec)
            if jsonl:
                d = rec.as_dict() | ({} if check is None else {"reference_mismatch": problem})
                sys.stdout.write(json.dumps(d) + "\n")
                sys.stdout.flush()
            else:
                click.echo(_line(rec) + (f" REFERENCE MISMATCH: {problem}" if problem else ""))
        if bye:
            client.bye()
    result = summary.as_dict()
    result["link"] = client.stats.as_dict()
    if check is not None:
        result["reference_mismatches"] = len(check.mismatches)
        result["reference_checked"] = check.checked
    if jsonl:
        sys.stdout.write(json.dumps({"summary": result}) + "\n")
    else:
        click.echo(_summary(result))
        if check is not None:
            click.echo(
                f"reference: {len(check.mismatches)} of {check.checked} answers differ from the numpy int8 reference"
                + (f" (samples {', '.join(str(i) for i in check.mismatches[:10])})" if check.mismatches else "")
            )
    failed = summary.lost + summary.errors
    if failed:
        raise SamplesLost(f"{summary.lost} of {summary.samples} samples got no answer, {summary.errors} got an ERROR")
    if check is not None and check.mismatches and fail_on_mismatch:
        raise ParityMismatch(f"{len(check.mismatches)} answers differ from the numpy reference of {export_dir}")


def _test_split(data, data_dir, model):
    """The test split of --data (else MNIST), normalised as the checkpoint records; and a note when it
    cannot: without --model the normalisation is fitted on the data's own training split."""
    from mcuflow.data import DataRecord, mnist_split, open_source

    record = None if model is None else DataRecord.from_meta(getattr(model, "meta", None))
    if data is None:
        return mnist_split("test", data_dir, record=record), None
    test = open_source(data).for_model("test", record)
    note = None
    if record is None and test.name != "MNIST":
        note = f"inputs {test.normalization.describe()}; give --model to use the normalisation it was trained with"
    return test, note


class ReferenceCheck:
    """The numpy int8 reference's answer for every input, to compare the device's with."""

    def __init__(self, ref):
        self.ref = ref
        self.mismatches: list[int] = []
        self.checked = 0

    @classmethod
    def of(cls, export_dir, q, tail) -> ReferenceCheck:
        from pathlib import Path

        from mcuflow.hil import read_export_facts, reference_predictions

        facts = read_export_facts(Path(export_dir))
        ref, _, _ = reference_predictions(Path(export_dir), q, tail, facts)
        return cls(ref)

    def problem(self, rec) -> str | None:
        """Why ``rec`` differs from the reference, or None (lost and refused samples are not compared)."""
        from mcuflow.hil import parity_problem

        if rec.status not in ("local", "offload"):
            return None
        self.checked += 1
        problem = parity_problem(rec, self.ref, rec.index)
        if problem is not None:
            self.mismatches.append(rec.index)
        return problem


def _line(rec) -> str:
    truth = "" if rec.truth is None else f" truth {rec.truth} {'ok' if rec.correct else 'WRONG'}"
    if rec.status == "local":
        return (
            f"sample {rec.index}: class {rec.prediction} (exit {rec.exit_index}, confidence {rec.confidence:.3f})"
            f"{truth} instr {rec.instructions}"
        )
    if rec.status == "offload" and rec.prediction is None:
        return f"sample {rec.index}: offloaded, unfinished (no host tail) instr {rec.instructions}"
    if rec.status == "offload":
        return f"sample {rec.index}: class {rec.prediction} (tail){truth} instr {rec.instructions}"
    return f"sample {rec.index}: {rec.status.upper()}: {rec.error}"


def _summary(r: dict) -> str:
    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    return (
        f"samples {r['samples']}: answered {r['answered']} (local {r['local']}, offloaded {r['offloaded']}"
        + (f", {r['unfinished']} unfinished: no host tail" if r["unfinished"] else "")
        + f"), lost {r['lost']}, errors {r['errors']}\n"
        f"accuracy {fmt(r['accuracy'], '.4f')}, exit rate {fmt(r['exit_rate'], '.3f')}, "
        f"instructions/sample {fmt(r['device_instructions_mean'], '.0f')}, "
        f"{fmt(r['samples_per_second'], '.1f')} samples/s\n"
        f"bytes down/sample {fmt(r['bytes_down_per_sample'], '.1f')}, up/sample {fmt(r['bytes_up_per_sample'], '.1f')}, "
        f"per offload {fmt(r['bytes_per_offload'], '.1f')}; "
        f"at 115200 baud the link alone takes {fmt(r['link_ms_per_sample_at_115200'], '.1f')} ms/sample"
    )


def _tail(model, export_dir, spec: str):
    """The tail to finish offloads with, or None for an ONNX head's export given none (unfinished offloads)."""
    from pathlib import Path

    from mcuflow.tail import BACKENDS, OnnxTail, load_tail

    if spec not in BACKENDS:
        if not Path(spec).is_file():
            raise ConfigError(f"--tail must be one of {', '.join(BACKENDS)} or a tail .onnx file; {spec} is neither")
        return OnnxTail(Path(spec))
    if spec == "auto" and model is None and export_dir is not None:
        from mcuflow.manifest import ExportManifest

        if ExportManifest.read(export_dir).tail is None:
            return None  # an ONNX head: the device's local answers still count, offloads are reported
    return load_tail(model, export_dir, spec)
