"""Video instance segmentation (YouTube-VIS): Mask R-CNN on the STPN backbone + online association."""
