"""``mcuflow run``: the host tail runner against a device on a serial port."""

from __future__ import annotations

import json
import sys

import click

from mcuflow.cli.main import cli
from mcuflow.errors import ConfigError, McuflowError


class SamplesLost(McuflowError):
    """Some samples got no valid answer (they are listed in the output)."""


@cli.command("run")
@click.option("--port", "port", required=True, help="Serial port URL: /dev/ttyACM0, socket://host:port, a pty path.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), help="Checkpoint (.pt) the device runs.")
@click.option("--export", "export_dir", type=click.Path(file_okay=False), help="Export directory of that model.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="MNIST directory (the test split is sent).")
@click.option(
    "--input", "input_path", type=click.Path(dir_okay=False), help=".npy of inputs: int8, uint8 pixels or float."
)
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), help=".npy of labels for --input.")
@click.option("--samples", type=click.IntRange(min=1), help="Send only the first N inputs.")
@click.option("--timeout", type=click.FloatRange(min=0.01), default=2.0, show_default=True, help="Seconds per answer.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True, help="Resends after a timeout.")
@click.option("--baud", type=int, default=115200, show_default=True)
@click.option("--connect-timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for the port.")
@click.option("--tail", "tail_backend", type=click.Choice(["auto", "numpy", "onnx", "torch"]), default="auto")
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
def run_cmd(
    port,
    model_path,
    export_dir,
    data_dir,
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
) -> None:
    """Send inputs to a device, finish offloaded samples with the tail, report.

    The device's model hash (from HELLO) must match the export's model_hash
    (with --export) or the checkpoint's (mcuflow.checkpoint.model_hash).
    """
    import numpy as np

    from mcuflow.link import DeviceClient, open_transport
    from mcuflow.link.messages import CAP_INFER_SPARSE
    from mcuflow.tail import InputQuant, check_model_hash, load_inputs, load_tail, run_session

    if model_path is None and export_dir is None:
        raise ConfigError("give --model CKPT and/or --export DIR (the model the device runs)")
    if data_dir is not None and input_path is not None:
        raise ConfigError("give --data-dir or --input, not both")
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
    tail = load_tail(model, export_dir, tail_backend)

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
            from mcuflow.data.mnist import load_mnist

            split = load_mnist("test", data_dir)
            inputs, labels = split.images.reshape(len(split), -1), split.labels
            if inputs.shape[1] != info.input_len:
                raise ConfigError(f"MNIST images have {inputs.shape[1]} pixels, the device expects {info.input_len}")
        if samples is not None:
            inputs = inputs[:samples]
            labels = labels[:samples] if labels is not None else None
        q = quant.quantize(inputs)

        say = (lambda s: None) if jsonl else click.echo
        say(
            f"device: {info.board}, firmware {info.firmware_version[0]}.{info.firmware_version[1]}, "
            f"model {info.model_hash_hex[:16]}..., input {info.input_len}, intermediate {info.intermediate_len}; "
            f"tail: {tail.kind}"
        )
        from mcuflow.tail import SessionSummary

        summary = SessionSummary()
        for rec in run_session(client, q, tail, labels, summary, max_consecutive_lost=max_lost):
            if jsonl:
                sys.stdout.write(json.dumps(rec.as_dict()) + "\n")
                sys.stdout.flush()
            else:
                click.echo(_line(rec))
        if bye:
            client.bye()
    result = summary.as_dict()
    result["link"] = client.stats.as_dict()
    if jsonl:
        sys.stdout.write(json.dumps({"summary": result}) + "\n")
    else:
        click.echo(_summary(result))
    failed = summary.lost + summary.errors
    if failed:
        raise SamplesLost(f"{summary.lost} of {summary.samples} samples got no answer, {summary.errors} got an ERROR")


def _line(rec) -> str:
    truth = "" if rec.truth is None else f" truth {rec.truth} {'ok' if rec.correct else 'WRONG'}"
    if rec.status == "local":
        return (
            f"sample {rec.index}: class {rec.prediction} (exit {rec.exit_index}, confidence {rec.confidence:.3f})"
            f"{truth} instr {rec.instructions}"
        )
    if rec.status == "offload":
        return f"sample {rec.index}: class {rec.prediction} (tail){truth} instr {rec.instructions}"
    return f"sample {rec.index}: {rec.status.upper()}: {rec.error}"


def _summary(r: dict) -> str:
    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    return (
        f"samples {r['samples']}: answered {r['answered']} (local {r['local']}, offloaded {r['offloaded']}), "
        f"lost {r['lost']}, errors {r['errors']}\n"
        f"accuracy {fmt(r['accuracy'], '.4f')}, exit rate {fmt(r['exit_rate'], '.3f')}, "
        f"instructions/sample {fmt(r['device_instructions_mean'], '.0f')}, "
        f"{fmt(r['samples_per_second'], '.1f')} samples/s\n"
        f"bytes down/sample {fmt(r['bytes_down_per_sample'], '.1f')}, up/sample {fmt(r['bytes_up_per_sample'], '.1f')}, "
        f"per offload {fmt(r['bytes_per_offload'], '.1f')}; "
        f"at 115200 baud the link alone takes {fmt(r['link_ms_per_sample_at_115200'], '.1f')} ms/sample"
    )
