"""Install vggt_mapper as a pip package and as a ROS 2 ament_python package."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'vggt_mapper'

# torch is a range that the CPU wheel 2.13.0 satisfies: installing it first (README) means pip
# never swaps in a multi-GB CUDA build; a user with CUDA torch already installed keeps theirs.
INSTALL_REQUIRES = [
    'numpy>=1.24',
    'torch>=2.3',
    'safetensors>=0.4',
    'huggingface_hub>=0.23',
    'pillow>=10',
    'opencv-python-headless>=4.8',
    'scipy>=1.10',
    'trimesh>=4.0',
    'rosbags>=0.10',
    'mcap>=1.1',  # reads mcap bags cut short (no footer), which rosbags refuses
    'av>=12',
    'tqdm>=4.60',
    'PyYAML>=6',
    'gtsam>=4.2',  # keyframe Sim(3) pose graph (engine/pose_graph.py)
    'faiss-cpu>=1.8',  # place recognition index (engine/places.py)
]

EXTRAS = {
    'web': ['gradio>=6,<7', 'gradio_client>=1.7'],
    'test': [
        'pytest>=8',
        'evo>=1.28',
        'gradio>=6,<7',
        'gradio_client>=1.7',
        'playwright>=1.40',
        # ament_flake8's plugins and ament_pep257's checker: CI lints like colcon test
        'flake8~=7.5',
        'flake8-builtins~=3.1',
        'flake8-comprehensions~=3.17',
        'flake8-docstrings~=1.7',
        'flake8-import-order~=0.19',
        'flake8-quotes~=3.4',
        'pydocstyle~=6.3',
    ],
    # psutil: the benchmarks' RSS of the mapper and its optimiser process (CI runs a smoke)
    'dev': ['ruff>=0.5', 'mypy>=1.10', 'psutil>=5.9'],
    # vggt-mapper batch (Ray Core) and serve --replicas (Ray Serve, its HTTP stack; form
    # parsing of /predict_window uploads); httpx is RemotePredictor's client for the pool.
    'cluster': ['ray[serve]>=2.40', 'python-multipart>=0.0.9', 'httpx>=0.27'],
}

setup(
    name=PACKAGE,
    version='0.1.0',
    description='Dense 3D mapping from a single moving camera with VGGT',
    long_description=open('README.md', encoding='utf-8').read() if os.path.exists(
        'README.md') else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks']),
    include_package_data=True,
    package_data={PACKAGE: ['py.typed', 'data/sample/*', 'data/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml') + glob('config/*.rviz')),
    ],
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    zip_safe=True,
    entry_points={
        'console_scripts': [
            'vggt-mapper = vggt_mapper.cli.entry_points:main',
            'mapper_node = vggt_mapper.ros.node:main',
        ],
    },
)
