"""train/trainer.py overrides three private Trainer methods that have no public equivalent: `_get_train_sampler` (the
class-balanced sampler), `_save_checkpoint` (its time is kept out of the throughput figures) and `_save` (the
trained tensors outside the LoRA adapter need the state dict that save_model gathers under ZeRO-3, once).
pyproject.toml pins transformers to the versions checked here; a new one must pass these tests before the pin moves.
"""

import inspect

from transformers import Trainer

from train.trainer import VideoLlamaTrainer


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_private_methods_overridden_exist_with_the_parameters_the_overrides_take():
    for name in ("_get_train_sampler", "_save_checkpoint", "_save"):
        assert name in vars(VideoLlamaTrainer), f"VideoLlamaTrainer no longer overrides {name}: update this test"
        assert _parameters(getattr(Trainer, name)) == _parameters(getattr(VideoLlamaTrainer, name)), name


def test_the_private_methods_are_still_reached_from_where_the_trainer_relies_on_them():
    # the training dataloader asks for the sampler
    assert "self._get_train_sampler" in inspect.getsource(Trainer.get_train_dataloader)
    # a checkpoint is written through save_model -> _save, with the gathered (ZeRO-3) state dict passed on
    assert "self._save_checkpoint(" in inspect.getsource(Trainer._maybe_log_save_evaluate)
    assert "self.save_model(" in inspect.getsource(Trainer._save_checkpoint)
    save_model = inspect.getsource(Trainer.save_model)
    assert "self._save(output_dir, state_dict=state_dict)" in save_model
    assert "self._save(output_dir)" in save_model
