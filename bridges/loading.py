"""Build the audited classifier oracle a config asks for."""

from __future__ import annotations

from bridges.classifier import ClassifierOracle
from bridges.weights import ModelLoadError, build_from_import_path, build_vision_model, load_into


def build_classifier_oracle(model_config, train_set, held_out, data_config, progress: bool = True) -> tuple[ClassifierOracle, dict]:
    """``(oracle, info)`` for ``model_config`` (a :class:`fadejax.audits.image.config.ModelConfig`).

    For the embedded model, ``train_set`` trains it (once; cached) and ``held_out``
    measures it; ``info`` reports where the weights are and the clean accuracy.
    """
    num_classes = model_config.num_classes or held_out.num_classes
    if model_config.source == "huggingface":  # its own classes: the data's are mapped onto them (data.class_map)
        from bridges.hf_classifier import load_hf_image_classifier

        model = load_hf_image_classifier(model_config.architecture)
        names = model.label_names
        oracle = ClassifierOracle(model, len(names), model_config.device)
        return oracle, {"weights": model_config.architecture, "label_names": names}
    if model_config.source == "embedded":
        from bridges import digits_cnn

        if model_config.architecture not in digits_cnn.EMBEDDED:
            raise ModelLoadError(
                f"model.architecture '{model_config.architecture}' is not an embedded model; "
                f"the embedded ones are {', '.join(repr(name) for name in sorted(digits_cnn.EMBEDDED))}"
            )
        if train_set is None:
            raise ModelLoadError("the embedded model trains on the digits data; set data.source: digits (or colour_digits)")
        recipe = {
            **model_config.embedded.model_dump(),
            "image_size": data_config.image_size,
            "held_out_fraction": data_config.held_out_fraction,
            "split_seed": data_config.split_seed,
        }
        channels = train_set.images.shape[-1]
        if data_config.source != "digits" or channels != 1:  # part of the key only then: the grey models keep theirs
            recipe.update(source=data_config.source, channels=int(channels))
        model, info = digits_cnn.load_or_train(train_set, held_out, recipe, progress=progress, architecture=model_config.architecture)
    elif model_config.source == "file":
        model = load_into(build_from_import_path(model_config.architecture, model_config.architecture_kwargs), model_config.weights)
        info = {"weights": model_config.weights}
        names = getattr(model, "label_names", None)  # a class that names its classes (e.g. LocalHFImageClassifier)
        if isinstance(names, (list, tuple)) and names:
            info["label_names"] = [str(n) for n in names]
    else:
        model = build_vision_model(model_config.source, model_config.architecture, model_config.weights, model_config.architecture_kwargs)
        info = {"weights": model_config.weights or "(library cache)"}
    oracle = ClassifierOracle(model, num_classes, model_config.device, model_config.normalize_mean, model_config.normalize_std)
    return oracle, info
