"""Video object detection on STPN: Faster R-CNN + FPN, training task, inference, commands."""
