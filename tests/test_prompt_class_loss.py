"""The prompts' class loss (``detection.prompt_class_loss``): the last stage's prompts, averaged,
classify which classes the key frame holds; off by default with no extra parameters."""
import pytest
import torch
import torch.nn.functional as F

from stpn.detection.build import build_detector
from stpn.engine.config import load_config, packaged_config


def _detector(weight, *more):
    torch.manual_seed(0)
    cfg = load_config(packaged_config("demo_cpu"), [f"detection.prompt_class_loss={weight}", *more])
    return build_detector(cfg)


def _batch():
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 120, 160, generator=g) for _ in range(2)]
    support = [torch.rand(2, 3, 120, 160, generator=g) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 10, 50, 50]]), "labels": torch.tensor([2])},
               {"boxes": torch.tensor([[10.0, 10, 50, 50], [60, 60, 90, 90]]), "labels": torch.tensor([1, 3])}]
    return images, support, targets, torch.tensor([[-1, 1], [-1, 1]])


@pytest.mark.parametrize("depth", ["deep", "shallow"])
def test_the_loss_is_bce_of_the_last_stage_prompts_against_the_key_frames_classes(depth):
    det = _detector(0.5, f"model.prompt_depth={depth}").train()
    images, support, targets, offsets = _batch()
    torch.manual_seed(5)  # stochastic depth draws: the same in both passes
    losses = det(images, targets, support, offsets)
    # the same prompts computed step by step, outside the hook
    torch.manual_seed(5)
    image_list, tg = det.transform(images, [dict(t) for t in targets])
    sup = det.transform_support(support, image_list.image_sizes, image_list.tensors.shape[-2:])
    prompts = det.stpn.predict_prompts(*det.stpn.encode_support(sup), offsets)
    last = prompts if depth == "shallow" else prompts[-1]
    present = torch.tensor([[0.0, 1, 0], [1, 0, 1]])  # labels 1..3 -> columns 0..2
    expect = 0.5 * F.binary_cross_entropy_with_logits(det.prompt_classifier(last.mean(1)), present)
    assert losses["loss_prompt_class"].item() == pytest.approx(expect.item(), rel=1e-5)
    losses["loss_prompt_class"].backward()
    query = det.stpn.predictor.query if depth == "shallow" else det.stpn.predictor[-1].query
    assert query.grad is not None and query.grad.abs().sum() > 0  # it trains the predictor


def test_off_by_default_without_parameters_and_never_at_inference():
    plain = _detector(0.0)
    assert not hasattr(plain, "prompt_classifier")
    images, support, targets, offsets = _batch()
    assert "loss_prompt_class" not in plain.train()(images, targets, support, offsets)
    det = _detector(1.0)
    extra = set(det.state_dict()) - set(plain.state_dict())
    assert extra == {"prompt_classifier.weight", "prompt_classifier.bias"}
    det.eval()
    images, support, _, offsets = _batch()
    with torch.no_grad():
        out = det(images, None, support, offsets)
    assert isinstance(out, list) and det._prompts is None  # nothing kept from an inference pass
    for cfg in (("model.prompting=false",), ("model.predictor=static", "model.predictor_kwargs={}")):
        assert not hasattr(_detector(1.0, *cfg), "prompt_classifier")  # no prompts from supports: nothing to ask


def test_a_label_outside_the_classes_is_refused_not_wrapped():
    det = _detector(1.0).train()
    images, support, targets, offsets = _batch()
    targets[1]["labels"] = torch.tensor([0, 3])  # 0 would index the last class
    with pytest.raises(ValueError, match=r"image 1 has labels \[0, 3\]; expected 1..3"):
        det(images, targets, support, offsets)
